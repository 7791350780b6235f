"""Redis is an optimisation, never a dependency of a page: with the cache unreachable, every
public page keeps working (rate limits count in the process, sessions live in the database,
the page cache is skipped) and every write is recorded.

Here Redis is an address nobody listens on, or a real server the cache cannot reach for a while
(its data kept, as in a network outage); ``test_redis_outage.py`` stops and starts a real one.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from config import cache as cache_backend
from config.cache import CacheUnavailable
from consents.models import Contact, Event, Outbox
from preferences import pagecache, ratelimit
from preferences.models import PendingSignup
from tests.preferences.center_fixtures import form_state, open_session, post
from tests.preferences.pages import signup_data
from tests.preferences.store_fixtures import *  # noqa: F403  (the store fixtures)
from tests.workers import UNREACHABLE_BROKER, celery_publishing

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("topics")]


@pytest.fixture
def redis_down(settings: Any) -> None:
    """The cache, the sessions' cache and the broker all at an address that refuses."""
    settings.CACHES = {
        "default": {"BACKEND": "config.cache.RedisCache", "LOCATION": UNREACHABLE_BROKER}
    }
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with celery_publishing(UNREACHABLE_BROKER, eager=False):
        yield


def test_reads_miss_writes_are_dropped_and_the_outage_is_logged_once(
    redis_down: None, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="config.cache")
    assert cache.get("k", "default") == "default"
    cache.set("k", 1)
    assert cache.add("k", 1) is False
    assert cache.get_many(["k", "l"]) == {}
    assert cache.has_key("k") is False and "k" not in cache
    assert cache.delete("k") is False
    cache.set_many({"a": 1})
    cache.delete_many(["a"])
    with pytest.raises(CacheUnavailable):
        cache.incr("k")
    assert cache_backend.cache_down(cache)
    outage = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(outage) == 1


def test_rate_limits_count_in_the_process_while_redis_is_down(redis_down: None) -> None:
    scope = f"test-{uuid.uuid4().hex}"
    answers = [ratelimit.allow(scope, "ip", limit=2, window_seconds=60) for _ in range(4)]
    assert answers == [True, True, False, False]
    assert ratelimit.allow(scope, "other-ip", limit=2, window_seconds=60)


def test_the_page_cache_is_skipped_while_redis_is_down(redis_down: None) -> None:
    cache.get("anything")  # the first failure marks it down
    assert not pagecache.enabled()


def test_sign_up_confirm_and_preferences_work_while_redis_is_down(
    redis_down: None, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    for i in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/subscribe/",
                signup_data(email=f"person{i}@example.fr"),
                REMOTE_ADDR=f"198.51.100.{i + 1}",
            )
        assert response.status_code == 302, response.content.decode()[:500]
    # Recorded, each email waiting in the outbox for the broker (the sweep sends it later).
    assert Contact.objects.count() == PendingSignup.objects.count() == 3
    assert Event.objects.filter(type="opt_in").count() == 3
    assert set(Outbox.objects.values_list("status", flat=True)) == {Outbox.Status.PENDING}

    # The confirmation link, with its session-free GET and its POST.
    from consents import links

    signup = PendingSignup.objects.select_related("contact").first()
    assert signup is not None
    path = f"/confirm/{links.make('confirm', signup.contact, s=signup.nonce)}/"
    assert client.get(path).status_code == 200
    assert client.post(path).status_code == 200
    assert Event.objects.filter(type="doi_confirmed").count() == 1

    # The preference page: a session kept in the database, a save, the page drawn each time.
    open_session(client, signup.contact)
    page = client.get("/preferences/")
    assert page.status_code == 200
    data = form_state(page.content.decode())
    with django_capture_on_commit_callbacks(execute=True):
        saved = post(client, {**data, "on": []})
    assert saved.status_code == 302
    assert client.get("/preferences/").status_code == 200
    assert Event.objects.filter(type="opt_out").count() == 1

    # "Manage my preferences" and leaving.
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/", {"email": "person1@example.fr"}).status_code == 302
    unsubscribe = f"/unsubscribe/{links.make('unsubscribe', signup.contact)}/"
    assert client.post(unsubscribe).status_code == 200


# --- A real Redis the cache loses for a while, its data kept ------------------------------------


@pytest.fixture
def partitioned(tmp_path: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The cache and the sessions on a Redis server of the test's own; ``cut()`` makes every
    command fail as if the network were down, ``mend()`` lets them through again."""
    import redis

    from tests.workers import RedisServer

    server = RedisServer(log_path=tmp_path / "redis.log")
    server.start()
    monkeypatch.setattr(cache_backend, "RETRY_AFTER", 0.0)
    settings.CACHES = {"default": {"BACKEND": "config.cache.RedisCache", "LOCATION": server.url}}
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    client = cache._cache  # the backend's Redis client wrapper
    real = client.get_client

    def down(*args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("network down (test)")

    server.cut = lambda: monkeypatch.setattr(client, "get_client", down)
    server.mend = lambda: monkeypatch.setattr(client, "get_client", real)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.redis
def test_what_was_written_during_the_outage_is_deleted_once_redis_is_back(
    partitioned: Any,
) -> None:
    cache.set("catalog", "before")
    cache.set("untouched", "kept")
    partitioned.cut()
    cache.set("catalog", "during")  # dropped: Redis still holds "before"
    assert cache.get("catalog") is None
    partitioned.mend()
    assert cache.get("catalog") is None  # the stale "before" is gone, not served
    assert cache.get("untouched") == "kept"
    cache.set("catalog", "after")
    assert cache.get("catalog") == "after"


@pytest.mark.redis
def test_a_session_ended_during_the_outage_does_not_come_back(
    partitioned: Any, make_user: Any, shop: Any, tablet: Any
) -> None:
    from django.conf import settings as django_settings

    from preferences import store
    from tests.preferences.store_fixtures import log_in

    staff = Client()
    staff.cookies[store.DEVICE_COOKIE] = store.device_cookie_value(tablet)
    log_in(staff, make_user("alice", stores=(shop,)))
    assert staff.get("/store/").status_code == 200  # the session is in Redis too
    old_session = staff.cookies[django_settings.SESSION_COOKIE_NAME].value

    partitioned.cut()
    assert staff.post("/store/logout/").status_code == 302
    partitioned.mend()

    stale = Client()
    stale.cookies[django_settings.SESSION_COOKIE_NAME] = old_session
    stale.cookies[store.DEVICE_COOKIE] = store.device_cookie_value(tablet)
    response = stale.get("/store/")
    assert response.status_code == 302 and "/store/login/" in response["Location"]
