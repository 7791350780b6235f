"""The WSGI entry point: the application (the email service's webhooks through the middleware a
machine's request needs, every other request through all of it), and what it loaded kept out of
the cycle collector."""

from __future__ import annotations

import gc
import io
import json
import sys
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.handlers.wsgi import WSGIHandler

from consents.models import Contact
from preferences.models import TrackingInbox
from tests.preferences.test_webhooks import AUTH, MAILGUN_SIGNING_KEY, WEBHOOK_SECRET
from tests.preferences.test_webhooks import mailgun_payload as payload


def test_what_the_application_loaded_is_out_of_the_cycle_collectors_reach() -> None:
    from config import wsgi

    assert isinstance(wsgi.people, WSGIHandler) and isinstance(wsgi.machines, WSGIHandler)
    # Frozen when the module was loaded: Django's and the apps' objects are not walked again.
    assert gc.get_freeze_count() > 10_000


def test_the_machines_handler_leaves_out_what_a_machine_has_no_use_for() -> None:
    from config.handlers import MachineHandler, machine_middleware

    before = list(django_settings.MIDDLEWARE)
    MachineHandler()
    assert before == django_settings.MIDDLEWARE  # put back
    assert machine_middleware() == [
        "django.middleware.security.SecurityMiddleware",
        "config.middleware.ContentSecurityPolicyMiddleware",
        "config.middleware.UnreadableRequestMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ]


def call(method: str, path: str, body: bytes = b"", **headers: str) -> tuple[int, dict, bytes]:
    """One request through ``config.wsgi.application``, as a WSGI server makes it."""
    from config import wsgi

    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "SERVER_NAME": "testserver",
        "SERVER_PORT": "80", "HTTP_HOST": "testserver", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.version": (1, 0), "wsgi.multithread": False,
        "wsgi.multiprocess": True, "wsgi.run_once": False, "CONTENT_LENGTH": str(len(body)),
        **headers,
    }  # fmt: skip
    started: list[Any] = []
    content = b"".join(wsgi.application(environ, lambda s, h, *a: started.append((s, h))))
    status, header_list = started[0]
    found: dict[str, list[str]] = {}
    for name, value in header_list:
        found.setdefault(name.lower(), []).append(value)
    return int(status.split()[0]), found, content


@pytest.mark.django_db
def test_a_webhook_goes_through_the_machines_stack_a_page_through_the_whole(
    settings: Any, make_contact: Callable[..., Contact], connection_kept: None
) -> None:
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
    }
    make_contact(email="alice@example.fr")
    body = json.dumps(payload("clicked", "alice@example.fr")).encode()
    status, headers, _ = call(
        "POST", "/webhooks/anymail/mailgun/tracking/", body,
        CONTENT_TYPE="application/json", **AUTH,
    )  # fmt: skip
    assert status == 200
    assert TrackingInbox.objects.get().recipient == "alice@example.fr"
    # The security headers and the policy, no cookie, nothing varying by session or language.
    assert headers["x-content-type-options"] == ["nosniff"]
    assert headers["x-frame-options"] == ["DENY"]
    assert "content-security-policy" in headers
    assert "set-cookie" not in headers and "vary" not in headers
    assert "content-language" not in headers
    # A body that is not UTF-8: refused. A NUL in the address: our clear 400 page, before anymail.
    status, _, _ = call(
        "POST", "/webhooks/anymail/mailgun/tracking/", b'{"\xff": 1}',
        CONTENT_TYPE="application/json", **AUTH,
    )  # fmt: skip
    assert status == 400
    status, headers, content = call(
        "POST", "/webhooks/anymail/mailgun/tracking/", body, QUERY_STRING="x=%00",
        CONTENT_TYPE="application/json", **AUTH,
    )  # fmt: skip
    assert status == 400 and headers["content-type"] == ["text/html; charset=utf-8"]
    assert b"<!doctype html>" in content
    # A host the site does not serve: refused, as any other request.
    status, _, _ = call(
        "POST", "/webhooks/anymail/mailgun/tracking/", body, HTTP_HOST="evil.example",
        CONTENT_TYPE="application/json", **AUTH,
    )  # fmt: skip
    assert status == 400 and TrackingInbox.objects.count() == 1
    # Wrong credentials: refused by anymail, as through the whole stack.
    status, _, _ = call(
        "POST", "/webhooks/anymail/mailgun/tracking/", body,
        CONTENT_TYPE="application/json", HTTP_AUTHORIZATION="Basic bm9ib2R5Om5vdGhpbmc=",
    )  # fmt: skip
    assert status == 400 and TrackingInbox.objects.count() == 1
    # A page: the whole stack (its language, its CSRF cookie).
    status, headers, content = call("GET", "/subscribe/", HTTP_ACCEPT_LANGUAGE="fr")
    assert status == 200 and b'name="csrfmiddlewaretoken"' in content
    assert any(c.strip().startswith("csrftoken=") for c in headers["set-cookie"])
    assert headers["content-language"] == ["fr"]
