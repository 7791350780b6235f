"""The preference page is drawn once and served again while nothing it shows has changed.

Each test reads the page twice around a change made *outside* the page (a service call, an admin
edit, time passing) and checks the second read shows it: a cache that served a stale page fails.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from consents import catalogue, clock, services
from consents.models import Contact
from preferences import pagecache
from tests.preferences.center_fixtures import form_state, open_session, post

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages")]

# A page this process served, served again: one query (the session's row with the contact).
SERVED = 1
# Served by another process: the contact only, and the session when it lives in the database.
SERVED_ELSEWHERE = 1 if settings.SESSION_ENGINE.endswith("cached_db") else 2
# The session engines that keep the session's row in the database (the page reads it with the
# contact), each test run with both.
DATABASE_SESSIONS = pytest.mark.parametrize(
    "engine",
    ["django.contrib.sessions.backends.cached_db", "django.contrib.sessions.backends.db"],
)
PROOF = services.Proof(method="web_form", actor="person", ip_address="203.0.113.9")


@pytest.fixture
def person(topics: Any, make_contact: Any) -> Contact:
    contact = make_contact(email="cache@example.fr")
    services.consent_grant(contact=contact, topic="newsletter", channel="email", proof=PROOF)
    return contact


def read(client: Client) -> tuple[str, int]:
    """The page's HTML and the number of SQL queries it cost."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/preferences/")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    return response.content.decode(), len(captured)


def without_csrf(html: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)


def box(html: str, value: str) -> str:
    return re.search(rf'<input type="checkbox" name="on" value="{value}"[^>]*>', html).group(0)


def test_a_second_read_is_served_from_the_cache_with_fewer_queries(
    person: Contact, client: Client
) -> None:
    open_session(client, person)
    first, drawn = read(client)
    second, served = read(client)
    # No topics, states, history or notices read again.
    assert served == SERVED < drawn
    assert without_csrf(first) == without_csrf(second)
    assert pagecache.CSRF_PLACEHOLDER not in second


def test_the_served_page_carries_a_working_csrf_token(person: Contact) -> None:
    client = Client(enforce_csrf_checks=True)
    open_session(client, person)
    read(client)
    html, served = read(client)
    assert served == SERVED
    data = form_state(html)
    data["csrfmiddlewaretoken"] = re.search(
        r'name="csrfmiddlewaretoken" value="([^"]+)"', html
    ).group(1)
    data["on"] = [v for v in data["on"] if v != "newsletter:email"]
    response = post(client, data)
    assert response.status_code == 302
    assert "checked" not in box(read(client)[0], "newsletter:email")


def test_an_event_recorded_elsewhere_shows_on_the_next_read(
    person: Contact, client: Client
) -> None:
    open_session(client, person)
    assert " checked" in box(read(client)[0], "newsletter:email")
    read(client)
    # An unsubscribe link, the admin, the API: anything that appends to the ledger.
    services.consent_withdraw(contact=person, topic="newsletter", channel="email", proof=PROOF)
    html, queries = read(client)
    assert " checked" not in box(html, "newsletter:email")
    assert queries > SERVED


def test_an_address_added_enables_its_channel(person: Contact, client: Client) -> None:
    open_session(client, person)
    assert " disabled" in box(read(client)[0], "promotions:sms")
    person.refresh_from_db()
    services.contact_update_details(contact=person, phone="+33612345678")
    assert " disabled" not in box(read(client)[0], "promotions:sms")


def test_a_topic_renamed_in_the_admin_shows_at_once(
    person: Contact, client: Client, topics: Any
) -> None:
    open_session(client, person)
    assert "La lettre d&#x27;information" in read(client)[0]
    topic = topics["newsletter"]
    topic.name_fr = "La gazette"
    topic.save()
    assert "La gazette" in read(client)[0]


def test_a_notice_published_shows_its_new_wording(
    person: Contact, client: Client, topics: Any
) -> None:
    open_session(client, person)
    read(client)
    services.notice_publish(topic=topics["newsletter"], language="fr", text="Nouveau texte 2.")
    assert "Nouveau texte 2." in read(client)[0]


def test_a_pause_that_ends_stops_showing_without_any_event(person: Contact, client: Client) -> None:
    open_session(client, person)
    now = clock.now()
    services.marketing_pause(
        contact=person, channel="*", until=now + timedelta(hours=1), proof=PROOF
    )
    assert 'name="action" value="resume"' in read(client)[0]
    html, served = read(client)
    assert served == SERVED and 'name="action" value="resume"' in html
    with clock.frozen(now + timedelta(hours=1, seconds=1)):
        html, queries = read(client)
    assert queries > SERVED
    assert 'name="action" value="pause"' in html


def test_each_person_gets_their_own_page(topics: Any, make_contact: Any) -> None:
    one, two = make_contact(email="one@example.fr"), make_contact(email="two@example.fr")
    first, second = Client(), Client()
    open_session(first, one)
    open_session(second, two)
    for _ in range(2):
        assert "one@example.fr" in read(first)[0]
        html = read(second)[0]
        assert "two@example.fr" in html and "one@example.fr" not in html


def test_the_language_switch_draws_the_other_language(person: Contact, client: Client) -> None:
    open_session(client, person)
    assert '<html lang="fr">' in read(client)[0]
    client.post("/preferences/", {"action": "language", "language": "en"})
    client.get("/preferences/")  # the "now in English" flash, never cached
    assert '<html lang="en">' in read(client)[0]


def test_the_saved_message_is_never_served_again(person: Contact, client: Client) -> None:
    open_session(client, person)
    data = form_state(read(client)[0])
    data["on"] = []
    post(client, data)
    assert 'id="saved"' in read(client)[0]
    assert 'id="saved"' not in read(client)[0]


def test_erasing_the_person_drops_their_page(person: Contact, client: Client) -> None:
    open_session(client, person)
    read(client)
    read(client)
    key = pagecache.page_key(client.session.session_key)
    assert cache.get(key) is not None
    services.contact_erase(contact=person, reason="asked by the person", actor="admin:test")
    assert cache.get(key) is None


def test_with_the_cache_off_every_read_is_drawn(
    person: Contact, client: Client, settings: Any
) -> None:
    settings.PREFERENCE_PAGE_CACHE_SECONDS = 0
    open_session(client, person)
    _, first = read(client)  # the session then read on its own
    _, second = read(client)
    _, third = read(client)
    assert first >= second == third > SERVED


def test_a_change_of_the_rules_settings_redraws_the_page(
    topics: Any, make_contact: Any, client: Client, settings: Any
) -> None:
    customer = make_contact(email="client@example.fr", informed_at_collection=True)
    services.purchase_record(contact=customer, category="books", product="b", proof=PROOF)
    open_session(client, customer)
    assert "state-covered" in read(client)[0]  # soft opt-in: a customer, informed
    assert "state-covered" in read(client)[0]
    # Retention of 0 years: the person's data has expired, nothing is covered any more.
    settings.RETENTION_YEARS = 0
    html, queries = read(client)
    assert queries > SERVED and "state-covered" not in html


def count_cache_trips(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The cache round trips of the session and the page from now on (a ``get_many`` made of
    ``get``s, as the local-memory cache's is, counts once)."""
    trips: list[list[str]] = []
    inside = [False]
    backend = type(cache._connections[cache._alias])  # type: ignore[attr-defined]
    get, get_many = backend.get, backend.get_many

    def counted_get(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        if not inside[0]:
            trips.append([key])
        return get(self, key, *args, **kwargs)

    def counted_get_many(self: Any, keys: list[str], *args: Any, **kwargs: Any) -> Any:
        trips.append(list(keys))
        inside[0] = True
        try:
            return get_many(self, keys, *args, **kwargs)
        finally:
            inside[0] = False

    monkeypatch.setattr(backend, "get", counted_get)
    monkeypatch.setattr(backend, "get_many", counted_get_many)
    return trips


def page_trips(trips: list[list[str]]) -> list[list[str]]:
    found = [
        t for t in trips if any(k.startswith(("django.contrib.sessions", "assent:")) for k in t)
    ]
    return [t for t in found if t != [catalogue.CATALOG_KEY]]  # read at most once a second


@DATABASE_SESSIONS
def test_a_page_this_process_served_is_served_again_on_one_query_and_no_cache_trip(
    person: Contact,
    client: Client,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
) -> None:
    """The process remembers the session's entry and holds its page: the session's row comes
    with the contact, in one query, and the cache is not asked."""
    settings.SESSION_ENGINE = engine
    open_session(client, person)
    read(client)
    trips = count_cache_trips(monkeypatch)
    html, queries = read(client)
    assert queries == 1 and 'id="id_detail_phone"' in html
    assert page_trips(trips) == []
    # The session read with the contact is the one its own load would have read.
    assert client.session["preferences_contact"] == person.public_id


def test_a_page_another_process_served_reads_its_session_and_its_page_in_one_cache_trip(
    person: Contact, client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sessions read through the cache (``cached_db``, as deployed), the session's entry not
    remembered here: one round trip brings the session's data and the page's entry, and the
    session does not read again."""
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    open_session(client, person)
    read(client)
    pagecache._local.entries.clear()
    trips = count_cache_trips(monkeypatch)
    html, served = read(client)
    assert served == 1 and 'id="id_detail_phone"' in html
    page = page_trips(trips)
    assert len(page) == 1 and len(page[0]) == 2, trips
    # Served, it is remembered: the next read asks the cache nothing.
    trips.clear()
    read(client)
    assert page_trips(trips) == []


def test_a_page_kept_here_is_served_only_while_its_session_lives_in_the_database(
    person: Contact, client: Client, settings: Any
) -> None:
    """Another process ends the session (a sign-out, an erasure): this one's memory does not
    serve the page, it finds the session gone."""
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    open_session(client, person)
    read(client)
    session_key = client.session.session_key
    Session.objects.filter(session_key=session_key).update(expire_date=clock.now())
    cache.delete(cached_db.KEY_PREFIX + session_key)
    response = client.get("/preferences/")
    assert 'id="id_detail_phone"' not in response.content.decode()
    assert "preferences_contact" not in client.session


def test_a_page_kept_here_is_drawn_again_when_the_contact_changed_elsewhere(
    person: Contact, client: Client
) -> None:
    """A change no signal of this process saw (another process, a bulk update): the
    fingerprint read with the session no longer matches the one remembered."""
    open_session(client, person)
    read(client)
    Contact.objects.filter(pk=person.pk).update(postal_address="3 rue des Lilas, 69001 Lyon")
    html, queries = read(client)
    assert queries > SERVED and "3 rue des Lilas" in html


def test_a_page_drawn_by_another_process_is_fetched_and_kept_here(
    person: Contact, client: Client
) -> None:
    """Each process keeps the pages it served in memory; one drawn elsewhere (this process's
    memory emptied) comes from the shared cache, the same page, and nothing is drawn again."""
    open_session(client, person)
    first, _drawn = read(client)
    pagecache._local.clear()
    second, served = read(client)
    assert served == SERVED_ELSEWHERE
    assert without_csrf(first) == without_csrf(second)
    assert [k for k, _ in pagecache._local.pages] == [
        pagecache.page_key(client.session.session_key)
    ]


def test_the_page_in_memory_is_served_only_while_the_shared_entry_names_it(
    person: Contact, client: Client
) -> None:
    open_session(client, person)
    read(client)
    key = pagecache.page_key(client.session.session_key)
    fp, until, digest = cache.get(key)
    # Not remembered here (served by another process): the shared entry names another page
    # (drawn elsewhere since), so this process's copy is not served; with that page gone from
    # the shared cache, the page is drawn again.
    pagecache._local.entries.clear()
    cache.set(key, (fp, until, "0" * 32))
    cache.delete(key + pagecache.HTML_SUFFIX)
    html, queries = read(client)
    assert queries > SERVED and 'id="id_detail_phone"' in html
    # Its entry dropped (an erasure, a change of contact), nothing is served from memory.
    read(client)
    pagecache.forget_sessions([client.session.session_key])
    assert cache.get(key) is None and cache.get(key + pagecache.HTML_SUFFIX) is None
    assert not [k for k in pagecache._local.pages if k[0] == key]
    assert key not in pagecache._local.entries
    assert read(client)[1] > SERVED


def test_the_entries_in_memory_are_bounded_and_only_remembered_with_their_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = pagecache._Local()
    monkeypatch.setattr(pagecache, "LOCAL_MAX_ENTRIES", 2)
    now = clock.now().timestamp()
    for i in range(3):
        local.put((f"k{i}", "d"), now + 60, (b"x",))
        local.remember(f"k{i}", ("fp", now + 60, "d"), f"p{i}")
    assert list(local.entries) == ["k1", "k2"]
    assert local.entry("k2") == (("fp", now + 60, "d"), "p2")
    local.forget(["k2"])
    assert local.entry("k2") is None
    local.remember("k1", ("fp", now + 60, "another digest"), "p1")
    assert local.entry("k1") is None  # its page is not held


def test_the_pages_in_memory_are_bounded_and_end_with_their_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = pagecache._Local()
    monkeypatch.setattr(pagecache, "LOCAL_MAX_BYTES", 250)
    now = clock.now().timestamp()
    for i in range(5):
        local.put((f"k{i}", "d"), now + 60, (b"x" * 50, b"y" * 50))
    assert [k for k, _ in local.pages] == ["k3", "k4"] and local.size == 200
    assert local.get(("k4", "d"), now) == (b"x" * 50, b"y" * 50)
    assert local.get(("k4", "d"), now + 60) is None  # the entry's end
    assert local.get(("k3", "other digest"), now) is None
    assert list(local.pages) == [("k3", "d")] and local.size == 100


def test_drawn_every_time_a_topic_renamed_or_a_new_wording_shows_at_once(
    person: Contact, client: Client, topics: Any, settings: Any
) -> None:
    """A topic's fieldset is drawn once per catalogue snapshot (``presenters.topic_parts``): a
    change of topic or notice replaces the snapshot, and what was drawn from the old one."""
    settings.PREFERENCE_PAGE_CACHE_SECONDS = 0
    open_session(client, person)
    read(client)
    assert "La lettre d&#x27;information" in read(client)[0]
    topic = topics["newsletter"]
    topic.name_fr = "La gazette"
    topic.save()
    assert "La gazette" in read(client)[0]
    services.notice_publish(topic=topic, language="fr", text="Nouveau texte 3.")
    html = read(client)[0]
    assert "Nouveau texte 3." in html and "La gazette" in html


def test_a_session_is_decoded_again_only_when_its_stored_data_changed() -> None:
    local = pagecache._Local()
    decoded: list[str] = []

    def decode(stored: str) -> dict[str, Any]:
        decoded.append(stored)
        return {"stored": stored}

    first = local.session_data("s", "a", decode)
    first["changed"] = True  # a copy: what the view does to it is not kept
    assert local.session_data("s", "a", decode) == {"stored": "a"}
    assert local.session_data("s", "b", decode) == {"stored": "b"}
    assert decoded == ["a", "b"]
    local.forget_sessions(["s"])
    local.session_data("s", "b", decode)
    assert decoded == ["a", "b", "b"]


def _session_with_contact(sql: str) -> bool:
    """The session's row read with the contact (prepared on PostgreSQL, by its name)."""
    if sql.startswith("EXECUTE "):
        return sql.startswith("EXECUTE assent_page_session")
    return "django_session" in sql and "consents_contact" in sql


@DATABASE_SESSIONS
def test_a_save_reads_its_session_with_the_contact_it_acts_for_in_one_query(
    person: Contact,
    client: Client,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
) -> None:
    """A session this process has acted for: a save (and a drawing with the page cache off)
    reads the session's row with the contact in one query, and the cache is not asked for the
    session."""
    settings.SESSION_ENGINE = engine
    open_session(client, person)
    html, _ = read(client)
    data = form_state(html)
    trips = count_cache_trips(monkeypatch)
    for flip in range(2):
        data["on"] = [v for v in data["on"] if v != "newsletter:email"]
        if flip:
            data["on"].append("newsletter:email")
        with CaptureQueriesContext(connection) as saving:
            assert post(client, data).status_code == 302
        assert _session_with_contact(saving.captured_queries[0]["sql"])
        assert not [q for q in saving.captured_queries[1:] if "session" in q["sql"]]
    assert not [t for t in page_trips(trips) if t[0].startswith("django.contrib.sessions")]
    assert Contact.objects.get(pk=person.pk).events.filter(topic="newsletter").count() == 3
    settings.PREFERENCE_PAGE_CACHE_SECONDS = 0
    trips.clear()
    with CaptureQueriesContext(connection) as drawing:
        assert client.get("/preferences/").status_code == 200
    assert _session_with_contact(drawing.captured_queries[0]["sql"])
    assert not [t for t in page_trips(trips) if t[0].startswith("django.contrib.sessions")]


def test_a_save_from_a_session_ended_elsewhere_is_refused(
    person: Contact, client: Client, settings: Any
) -> None:
    """The session this process acted for ended in another (a sign-out): its row is gone, the
    save is refused and nothing is recorded."""
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    open_session(client, person)
    data = form_state(read(client)[0])
    data["on"] = []
    session_key = client.session.session_key
    Session.objects.filter(session_key=session_key).delete()
    cache.delete(cached_db.KEY_PREFIX + session_key)
    before = person.events.count()
    assert post(client, data).status_code == 403
    assert person.events.count() == before
