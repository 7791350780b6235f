"""Malformed requests against every public form and endpoint: each answers below 500, and one
that is refused (4xx) leaves the ledger, the outbox and the contacts as they were.

Deterministic: a seeded generator (``ASSENT_FUZZ_SEED``) draws ``ASSENT_FUZZ_ITERATIONS``
requests (2,000 by default, a few seconds' worth; set more for a longer run). Each request is an
endpoint of ``config/urls.py``, ``preferences/urls.py``, ``preferences/store/urls.py``,
``consents/public_urls.py``, the email-service webhooks and the admin login, with its form
fields filled from a palette of bad values: long strings, NUL characters, invalid UTF-8,
look-alike Unicode, digits that are not ASCII, arrays where one value is expected, missing and
extra fields, wrong content types and charsets, odd methods and odd headers. A failure names
the iteration, so that the same seed replays it.
"""

from __future__ import annotations

import base64
import json
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Max
from django.test import Client

from consents import ledger, links, services
from consents.models import ConsentState, Contact, Event, Evidence, Outbox
from preferences.models import Capture, Device, LinkRequest, PendingSignup
from preferences.services import signup_submit
from preferences.store import devices as store
from tests.preferences.store_fixtures import PASSWORD, log_in

pytestmark = pytest.mark.django_db

SEED = int(os.environ.get("ASSENT_FUZZ_SEED", "20261130"))
ITERATIONS = int(os.environ.get("ASSENT_FUZZ_ITERATIONS", "2000"))
WEBHOOK_SECRET = "assent-esp:fuzz-webhook-secret"

# --- The palette of bad values ----------------------------------------------------------------

BAD_TEXT = [
    "",
    " ",
    "\t\r\n",
    "x" * 300,
    "é" * 5000,
    "a" * 100_000,
    "a\x00b",
    "\x00",
    "%00",
    "\x01\x02\x1f\x7f",
    "mаrie@example.fr",  # a Cyrillic а
    "ｍａｒｉｅ＠ｅｘａｍｐｌｅ．ｆｒ",  # fullwidth
    "marie@exаmple.fr",
    "marie@example.fr\u200b",
    "\u202eevil\u202c",
    "e\u0301\u0301\u0301",
    "😀" * 50,
    "²",
    "١٢",
    "³³",
    "Ⅻ",
    "-1",
    "0",
    "1e309",
    "99999999999999999999999999",
    "NaN",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "../../../etc/passwd",
    "${jndi:ldap://x}",
    "{{ 7*7 }}",
    "newsletter:email",
    "promotions:sms",
    "promotions:*",
    "*:*",
    ":",
    "newsletter:email\x00",
    "marie@example.fr",
    "a@" + ".".join(["é" * 20] * 11) + ".fr",
    "x@" + "a" * 250 + ".fr",
    "+33612345678",
    "06 12 34 56 78",
    "0" * 40,
    "fr",
    "en",
    "de",
    "here",
    "email",
    "yes",
    "no",
    "on",
    "save",
    "pause",
    "resume",
    "unsubscribe_all",
    "download_data",
    "language",
    "sign_out",
    "1",
    "3",
    "weekly",
    "One-Click",
    "Marie",
    "Votre colis est bloqué, appelez le 08 99 12 34 56",
    "2026-02-30",
    "9999-12-31",
    "0001-01-01",
]
# Bodies no form produces: invalid UTF-8, overlong encodings, surrogates, a stray BOM.
BAD_BYTES = [
    b"\xff\xfe\xfd",
    b"email=\xc3\x28&first_name=\xe2\x82",
    b"email=%FF%FE&choice=%C0%AF",
    b"\xed\xa0\x80=\xed\xbf\xbf",
    b"\xef\xbb\xbfemail=marie%40example.fr",
    b"email=" + b"%" * 1000,
    b"a=1&" * 2000,
    b"=&=&&&==",
    b"{not json",
    b"\x00" * 64,
]
CONTENT_TYPES = [
    "application/x-www-form-urlencoded; charset=utf-16",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-www-form-urlencoded; charset=no-such-charset",
    "application/x-www-form-urlencoded; charset=",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=x; charset=utf-16",
    "text/plain",
    "application/json",
    "application/xml",
    "image/png",
    "",
    "garbage",
    "application/x-www-form-urlencoded\x00",
]
METHODS = ["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "HEAD", "CONNECT", "FOO"]
HEADERS = [
    {"HTTP_USER_AGENT": "Mozilla\x00/5.0"},
    {"HTTP_USER_AGENT": "U" * 20_000},
    {"HTTP_X_FORWARDED_FOR": "not-an-ip, \x00, 999.1.1.1"},
    {"HTTP_X_FORWARDED_FOR": "1.2.3.4, 2001:db8::1"},
    {"HTTP_ACCEPT_LANGUAGE": "xx-\x00, ;q=abc, zh-Hant-TW;q=2"},
    {"HTTP_ACCEPT_LANGUAGE": "en" * 1000},
    {"HTTP_ORIGIN": "null"},
    {"HTTP_ORIGIN": "http://evil.example"},
    {"HTTP_REFERER": "\x00"},
    {"HTTP_COOKIE": 'sessionid="\\000abcdefgh"; csrftoken=\x00'},
    {"HTTP_COOKIE": "django_language=\x00; django_language=zz"},
    {"HTTP_COOKIE": "assent_device=garbage; sessionid=" + "s" * 5000},
    {"HTTP_AUTHORIZATION": "Basic !!!"},
    {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"\x00:\xff").decode()},
]


# --- The endpoints ----------------------------------------------------------------------------


@dataclass
class Endpoint:
    name: str
    path: Callable[[], str]
    fields: dict[str, list[str]] = field(default_factory=dict)  # field -> good values
    who: str = "anyone"  # anyone, person (a preference session), staff, manager
    methods: tuple[str, ...] = ("GET", "POST")
    json_body: Callable[[random.Random], Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class Site:
    """The data the requests aim at: a person with links, a pending sign-up, a store."""

    def __init__(self, make_topic: Any, make_contact: Any) -> None:
        for slug, channels in (("newsletter", ["email"]), ("promotions", ["email", "sms"])):
            topic = make_topic(slug, channels=channels, frequencies=["weekly", "monthly"])
            for language in ("fr", "en"):
                services.notice_publish(topic=topic, language=language, text=f"{slug} {language}")
        self.marie = make_contact(email="marie@example.fr", phone="+33611111111")
        proof = services.Proof(method="web_form", actor="person", collection_point="fuzz")
        services.consent_grant(contact=self.marie, topic="newsletter", channel="email", proof=proof)
        signup_submit(email="paul@example.fr", choices=[("promotions", "email")])
        pending = PendingSignup.objects.select_related("contact").get()
        self.paul = pending.contact
        self.confirm_path = urlsplit(links.url("confirm", self.paul, s=pending.nonce)).path
        self.shop = store.Store.objects.create(code="fuzz-01", name="Fuzz")
        self.manager = User.objects.create_user(username="manager", password=PASSWORD)
        self.staff = User.objects.create_user(username="staff", password=PASSWORD)
        from tests.preferences.store_fixtures import store_group

        self.manager.groups.add(store_group("Store manager"))
        self.staff.groups.add(store_group("Staff"))
        for user in (self.manager, self.staff):
            store.StoreMembership.objects.create(user=user, store=self.shop)
        self.tablet = store.device_enrol(store=self.shop, name="Till", enrolled_by=self.manager)

    def token(self, rng: random.Random, valid: str) -> str:
        """A token as emailed, or a mangled one."""
        choice = rng.randrange(8)
        if choice < 3:
            return valid
        if choice == 3:
            return valid[: rng.randrange(1, max(2, len(valid)))]
        if choice == 4:
            return valid + quote(rng.choice(BAD_TEXT)[:200], safe="")
        if choice == 5:
            return quote(rng.choice(BAD_TEXT)[:500], safe="") or "x"
        if choice == 6:
            return valid.replace(":", "%00", 1)
        return "%FF%FE" + valid[5:]


def endpoints(site: Site, rng: random.Random) -> list[Endpoint]:
    def path_of(url: str) -> str:
        return urlsplit(url).path

    def tok(path: str) -> str:
        return path.rstrip("/").rsplit("/", 1)[-1]

    confirm = tok(site.confirm_path)
    unsubscribe = tok(path_of(links.url("unsubscribe", site.marie)))
    keep = tok(path_of(links.url("keep", site.marie)))
    rectify = links.make(
        "email_change", site.marie, to="marie.new@example.fr", e="marie.new@example.fr"
    )
    choices = ["newsletter:email", "promotions:email", "promotions:sms"]
    person = {"email": ["marie@example.fr", "new.person@example.fr"], "first_name": ["Léa"]}
    signup = {
        **person,
        "phone": ["", "0612345678"],
        "language": ["fr", "en"],
        "choice": choices,
        "website": [""],
        "notices": [""],
    }
    capture = {
        "key": ["k" * 32],
        "language": ["fr", "en"],
        "email": ["claire@example.fr", ""],
        "phone": ["", "0612345678"],
        "first_name": ["Claire"],
        "choice": choices,
        "confirm": ["here", "email"],
        "purchase": ["", "on"],
        "purchase_category": [""],
        "switch_language": ["", "en"],
        "notices": [""],
    }
    phone = {
        "key": ["p" * 32],
        "language": ["fr"],
        "call_reference": ["CALL-1"],
        "email": [""],
        "phone": ["0612345678"],
        "first_name": [""],
        "callback": ["", "on"],
        "switch_language": ["", "en"],
        **{f"answer:{c}": ["yes", "no", ""] for c in choices},
    }
    center = {
        "action": ["save", "pause", "resume", "unsubscribe_all", "download_data", "language"],
        "shown": choices,
        "on": choices,
        "frequency-newsletter": ["weekly", "monthly", ""],
        "frequency-promotions": ["weekly"],
        "months": ["1", "3"],
        "language": ["fr", "en"],
        "notices": [""],
    }
    password = {"password1": ["A-long-password-9x"], "password2": ["A-long-password-9x"]}

    def postmark(r: random.Random) -> Any:
        event = {
            "RecordType": r.choice(["Bounce", "Click", "SpamComplaint", "SubscriptionChange"]),
            "ID": r.choice([1, "x", None, [], {}]),
            "Type": r.choice(["HardBounce", "SoftBounce", "\x00", 1]),
            "MessageID": r.choice(BAD_TEXT)[:300],
            "Email": r.choice(["marie@example.fr", *BAD_TEXT[:20]]),
            "Recipient": r.choice(["marie@example.fr", "\x00"]),
            "BouncedAt": r.choice(["2026-11-28T10:28:50Z", "9999-99-99", "\x00", 5]),
            "ReceivedAt": r.choice(["2026-11-28T10:28:50Z", ""]),
            "Origin": r.choice(["Recipient", None]),
            "SuppressSending": r.choice([True, "yes"]),
        }
        return r.choice([event, [event], "x", None, 1, {"\x00": "\x00"}])

    def brevo(r: random.Random) -> Any:
        event = {
            "event": r.choice(["hard_bounce", "spam", "click", "unsubscribed", "\x00", 5]),
            "email": r.choice(["marie@example.fr", *BAD_TEXT[:15]]),
            "id": r.choice([1, "x", None]),
            "message-id": r.choice(BAD_TEXT)[:200],
            "ts_epoch": r.choice([1767000000000, -1, 10**20, "x", None]),
            "date": r.choice(["2026-11-28 10:00:00", "\x00", None]),
        }
        return r.choice([event, [event], {}, "x", None])

    auth = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(WEBHOOK_SECRET.encode()).decode()}
    return [
        Endpoint("home", lambda: "/", {"email": person["email"]}),
        Endpoint("subscribe", lambda: "/subscribe/", signup),
        Endpoint(
            "subscribe embedded",
            lambda: "/subscribe/?embed=1&source=" + quote(rng.choice(BAD_TEXT)[:50], safe=""),
            signup,
        ),
        Endpoint("subscribe done", lambda: "/subscribe/done/?embed=" + rng.choice(["1", "%00"])),
        Endpoint("confirm", lambda: f"/confirm/{site.token(rng, confirm)}/"),
        Endpoint("confirm resend", lambda: f"/confirm/{site.token(rng, confirm)}/resend/"),
        Endpoint(
            "unsubscribe",
            lambda: f"/unsubscribe/{site.token(rng, unsubscribe)}/",
            {"List-Unsubscribe": ["One-Click"]},
        ),
        Endpoint(
            "preference link",
            lambda: f"/preferences/{site.token(rng, links.make('preferences', site.marie))}/",
        ),
        Endpoint("preference page", lambda: "/preferences/", center, who="person"),
        Endpoint("keep me", lambda: f"/keep/{site.token(rng, keep)}/"),
        Endpoint("confirm new email", lambda: f"/confirm-email/{site.token(rng, rectify)}/"),
        Endpoint("reconfirm", lambda: f"/reconfirm/{site.token(rng, 'abc:def')}/"),
        Endpoint(
            "language",
            lambda: "/i18n/setlang/",
            {"language": ["fr", "en"], "next": ["/subscribe/", "//evil.example/"]},
        ),
        Endpoint("health", lambda: "/healthz", methods=("GET",)),
        Endpoint("dev mail", lambda: rng.choice(["/dev/mail/", "/dev/mail/x%00/"])),
        Endpoint("admin login", lambda: "/admin/login/?next=/admin/", {"username": ["x"]}),
        Endpoint(
            "store login", lambda: "/store/login/", {"username": ["staff"], "password": ["x"]}
        ),
        Endpoint("store logout", lambda: "/store/logout/"),
        Endpoint("store home", lambda: "/store/", {"store": [str(site.shop.pk)]}, who="staff"),
        Endpoint("store capture", lambda: "/store/capture/", capture, who="staff"),
        Endpoint("store thanks", lambda: "/store/thanks/?auto=1", who="staff"),
        Endpoint("store phone", lambda: "/store/phone/", phone, who="staff"),
        Endpoint("store phone done", lambda: "/store/phone/done/", who="staff"),
        Endpoint(
            "store devices",
            lambda: "/store/devices/",
            {"store": [str(site.shop.pk)], "name": ["Till 2"]},
            who="manager",
        ),
        Endpoint(
            "store device revoke",
            lambda: f"/store/devices/{rng.choice(['999999', '0', '-1', 'x'])}/revoke/",
            who="manager",
        ),
        Endpoint(
            "store staff",
            lambda: "/store/staff/",
            {
                "username": ["new.staff"],
                "first_name": [""],
                "last_name": [""],
                "email": [""],
                "store": [str(site.shop.pk)],
                **password,
            },
            who="manager",
        ),
        Endpoint(
            "store staff actions",
            lambda: (
                f"/store/staff/{rng.choice(['999999', str(site.staff.pk)])}/"
                + rng.choice(["add-store/", "remove-store/", "deactivate/", "reactivate/"])
            ),
            {"store": [str(site.shop.pk)]},
            who="manager",
        ),
        Endpoint(
            "store staff password",
            lambda: f"/store/staff/{rng.choice(['999999', str(site.manager.pk)])}/password/",
            password,
            who="manager",
        ),
        Endpoint(
            "store own password",
            lambda: "/store/password/",
            {"old_password": ["wrong"], **password},
            who="staff",
        ),
        Endpoint(
            "postmark webhook",
            lambda: "/webhooks/anymail/postmark/tracking/",
            methods=("POST",),
            json_body=postmark,
            headers=auth,
        ),
        Endpoint(
            "brevo webhook",
            lambda: "/webhooks/anymail/brevo/tracking/",
            methods=("POST",),
            json_body=brevo,
            headers=auth,
        ),
    ]


# --- The requests -----------------------------------------------------------------------------


def value(rng: random.Random, good: list[str]) -> str:
    return rng.choice(good) if good and rng.random() < 0.5 else rng.choice(BAD_TEXT)


def form_pairs(rng: random.Random, endpoint: Endpoint) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name, good in endpoint.fields.items():
        roll = rng.random()
        if roll < 0.1:
            continue  # missing
        repeat = rng.choice([1, 1, 1, 2, 3, 50]) if roll < 0.3 else 1  # an array for a scalar
        pairs += [(name, value(rng, good)) for _ in range(repeat)]
    if rng.random() < 0.2:
        pairs.append((rng.choice(BAD_TEXT)[:100] or "extra", rng.choice(BAD_TEXT)))
    return pairs


def request(rng: random.Random, endpoint: Endpoint) -> tuple[str, str, dict[str, Any]]:
    """(method, path, client.generic keyword arguments), for one malformed request."""
    path = endpoint.path()
    extra: dict[str, Any] = dict(endpoint.headers)
    extra["REMOTE_ADDR"] = f"198.51.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    if rng.random() < 0.15:
        extra.update(rng.choice(HEADERS))
    shape = rng.randrange(10)
    if shape == 0:
        method = rng.choice(METHODS)
        body = urlencode(form_pairs(rng, endpoint)).encode()
        return method, path, {"data": body, "content_type": rng.choice(CONTENT_TYPES), **extra}
    if shape == 1 or "GET" not in endpoint.methods and "POST" not in endpoint.methods:
        query = urlencode(form_pairs(rng, endpoint)) + "&" + rng.choice(["%00", "%FF", "x=%C0"])
        sep = "&" if "?" in path else "?"
        return "GET", f"{path}{sep}{query}", extra
    if "POST" not in endpoint.methods:
        return "GET", path, extra
    if endpoint.json_body is not None and shape < 8:
        body = json.dumps(endpoint.json_body(rng), ensure_ascii=rng.random() < 0.5)
        raw = body.encode("utf-8", "surrogatepass")
        if shape == 7:
            raw = raw[: rng.randrange(len(raw) + 1)] + rng.choice(BAD_BYTES)
        return "POST", path, {"data": raw, "content_type": "application/json", **extra}
    if shape == 2:
        raw = rng.choice(BAD_BYTES)
        content_type = rng.choice([*CONTENT_TYPES, "application/x-www-form-urlencoded"])
        return "POST", path, {"data": raw, "content_type": content_type, **extra}
    if shape == 3:
        body = urlencode(form_pairs(rng, endpoint)).encode()
        return "POST", path, {"data": body, "content_type": rng.choice(CONTENT_TYPES), **extra}
    if shape == 4:
        return rng.choice(["GET", "HEAD"]), path, extra
    # The common case: a form as a browser posts it, its values from the palette.
    body = urlencode(form_pairs(rng, endpoint)).encode()
    return (
        "POST",
        path,
        {"data": body, "content_type": "application/x-www-form-urlencoded", **extra},
    )


WATCHED = [
    (Contact, "COUNT(*)"),
    (Event, "MAX(id)"),
    (Evidence, "COUNT(*)"),
    (ConsentState, "COUNT(*)"),
    (Outbox, "MAX(id)"),
    (PendingSignup, "COUNT(*)"),
    (Capture, "COUNT(*)"),
    (LinkRequest, "COUNT(*)"),
]


def snapshot() -> tuple[Any, ...]:
    """What a refused request must not have changed, in one query (it runs twice a request)."""
    qn = connection.ops.quote_name
    columns = ", ".join(f"(SELECT {what} FROM {qn(m._meta.db_table)})" for m, what in WATCHED)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns}")
        return tuple(cursor.fetchone())


# --- The test ---------------------------------------------------------------------------------


@pytest.fixture
def site(make_topic: Any, make_contact: Any, settings: Any) -> Site:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "fuzz"}
    }
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.ANYMAIL = {"WEBHOOK_SECRET": WEBHOOK_SECRET}
    # Deep into the forms rather than stopped at the door by a rate limit.
    settings.SIGNUP_MAX_PER_IP_PER_HOUR = 10**6
    settings.CAPTURE_RATE_PER_DEVICE = 10**6
    return Site(make_topic, make_contact)


# A session cookie of 5,000 characters makes a cache key memcached would refuse; Redis takes it.
@pytest.mark.filterwarnings("ignore::django.core.cache.CacheKeyWarning")
def test_malformed_requests_get_4xx_and_refused_ones_write_nothing(site: Site) -> None:
    rng = random.Random(SEED)
    points = endpoints(site, rng)
    clients: dict[str, Client] = {}
    anyone = Client()

    def client_for(who: str) -> Client:
        """A browser in the right state: a preference session, or a staff member logged in on
        the enrolled tablet (opened again when a request ended it)."""
        if who == "anyone":
            anyone.cookies.clear()  # one client (its middleware loads once), no memory
            return anyone
        client = clients.get(who)
        if client is not None:
            return client
        client = Client()
        if who == "person":
            site.marie.refresh_from_db()
            opened = client.get(f"/preferences/{links.make('preferences', site.marie)}/")
            assert opened.status_code == 302
        else:
            user = site.manager if who == "manager" else site.staff
            User.objects.filter(pk=user.pk).update(is_active=True)
            user.set_password(PASSWORD)
            user.save(update_fields=["password"])
            client.cookies[store.DEVICE_COOKIE] = store.device_cookie_value(site.tablet)
            # The fuzzed login forms count as failed logins from this address: start the
            # counters again, so that the staff member's own login is not the one refused.
            cache.clear()
            log_in(client, user)
        clients[who] = client
        return client

    failures: list[str] = []
    statuses: Counter[tuple[str, int]] = Counter()
    for i in range(ITERATIONS):
        endpoint = rng.choice(points)
        method, path, kwargs = request(rng, endpoint)
        client = client_for(endpoint.who)
        before = snapshot()
        where = f"iteration {i} (seed {SEED}): {endpoint.name}: {method} {path[:200]!r}"
        try:
            with transaction.atomic():
                response = client.generic(method, path, **kwargs)
        except Exception as exc:  # a 500: the test client re-raises the view's exception
            failures.append(f"{where}: {type(exc).__name__}: {str(exc)[:300]}")
            continue
        status = response.status_code
        statuses[(endpoint.name, status)] += 1
        if status >= 500:
            failures.append(f"{where}: {status}")
        elif status >= 400 and snapshot() != before:
            failures.append(f"{where}: answered {status} but wrote {before} -> {snapshot()}")
        if endpoint.who != "anyone" and (
            status in (401, 403) or (status == 302 and "login" in response.get("Location", ""))
        ):
            clients.pop(endpoint.who, None)  # signed out: open a new session next time
        elif endpoint.who == "person" and b"sign_out" in kwargs.get("data", b""):
            clients.pop("person", None)
    assert failures == [], "\n".join(failures[:20])

    # Every endpoint was reached, and some requests went deep enough to be accepted.
    reached = {name for name, _status in statuses}
    assert reached == {p.name for p in points}
    accepted = sum(n for (name, status), n in statuses.items() if status < 400)
    assert accepted > ITERATIONS // 10, statuses
    assert Event.objects.filter(type="opt_in").count() > 1  # beyond the two of the set-up

    # What the accepted ones wrote holds together: every chain verifies, every pending sign-up
    # has its confirmation email and its events, no address outgrew its column.
    checked, broken = ledger.verify_range(0, Contact.objects.aggregate(Max("pk"))["pk__max"] + 1)
    assert broken is None and checked == Event.objects.count()
    for signup in PendingSignup.objects.all():
        assert Outbox.objects.filter(contact=signup.contact).exists()
        events = [c["event"] for c in signup.choices]
        assert Event.objects.filter(pk__in=events).count() == len(events)
    assert all(
        len(e) <= 254 for e in Contact.objects.exclude(email=None).values_list("email", flat=True)
    )
    assert set(Outbox.objects.values_list("status", flat=True)) <= {Outbox.Status.PENDING}
    assert Device.objects.filter(pk=site.tablet.pk, revoked_at=None).exists()
