"""Every page carries the Content-Security-Policy, and no page needs inline script or style.

A crawl of the public pages, the store pages (a manager on an enrolled tablet) and the admin (a
superuser with a verified second factor) over the demo data: every response has the policy, and
no HTML page holds what the policy would block (an inline script, a ``<style>`` element, a
``style=`` or ``on...=`` attribute, a ``javascript:`` URL).
"""

from __future__ import annotations

import re
from collections import deque
from io import StringIO
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.test import Client

from consents.models import Store
from preferences import store
from tests.consents.conftest import verified_login
from tests.preferences.pages import CONFIRM_LINK, PREFERENCES_LINK, path_in, signup_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages")]

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
BLOCKED = {
    "inline script": re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE),
    "style element": re.compile(r"<style[\s>]", re.IGNORECASE),
    "style attribute": re.compile(r"<[a-z][^>]*\sstyle\s*=", re.IGNORECASE),
    "event handler attribute": re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE),
    "javascript: URL": re.compile(r"""(?:href|src|action)\s*=\s*["']?\s*javascript:""", re.I),
}
HREF = re.compile(r"""(?:href|src)="([^"#]*)""")


@pytest.fixture
def demo(settings: Any) -> None:
    settings.DEBUG = True  # demo_data refuses to run otherwise; pytest-django turns it off
    call_command("demo_data", stdout=StringIO())
    settings.DEBUG = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def crawl(client: Client, seeds: list[str], limit: int = 400) -> dict[str, Any]:
    """GET every same-site page reachable from ``seeds`` (each path once) -> its response."""
    queue, seen, answers = deque(seeds), set(), {}
    while queue and len(answers) < limit:
        url = queue.popleft()
        path = urlsplit(url).path
        if path in seen or path.startswith("/static/admin/"):
            continue
        seen.add(path)
        response = client.get(url, HTTP_ACCEPT_LANGUAGE="en")
        answers[url] = response
        found = []
        if response.status_code in (301, 302):
            found.append(response["Location"])
        if response.get("Content-Type", "").startswith("text/html"):
            found += HREF.findall(response.content.decode())
        for link in found:
            absolute = urljoin(url, link.replace("&amp;", "&"))
            parts = urlsplit(absolute)
            if parts.netloc in ("", "testserver") and parts.scheme in ("", "http"):
                queue.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return answers


def problems(answers: dict[str, Any]) -> list[str]:
    found = []
    for url, response in answers.items():
        if "Content-Security-Policy" not in response:
            found.append(f"{url}: no Content-Security-Policy")
            continue
        if not response.get("Content-Type", "").startswith("text/html"):
            continue
        if response["Content-Security-Policy"] != POLICY:
            found.append(f"{url}: {response['Content-Security-Policy']}")
        html = response.content.decode()
        for what, pattern in BLOCKED.items():
            if match := pattern.search(html):
                found.append(f"{url}: {what}: {match.group(0)[:80]}")
    return found


def test_public_pages(client: Client, demo: None, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/subscribe/", signup_data(email="new@example.fr", language="en"))
    confirm = path_in(CONFIRM_LINK, mail.outbox[-1])
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/", {"email": "camille.martin@example.fr"})
    opened = path_in(PREFERENCES_LINK, mail.outbox[-1])
    seeds = [
        "/",
        "/subscribe/",
        "/subscribe/done/",
        confirm,
        f"{confirm}resend/",
        "/confirm/not-a-token/",
        "/unsubscribe/not-a-token/",
        "/preferences/",
        "/preferences/not-a-token/",
        "/no-such-page/",
        "/store/login/",
        "/admin/login/",
        "/static/css/assent.css",
        opened,  # last: it opens the preference page in this session
        "/preferences/",
    ]
    answers = crawl(client, seeds)
    assert any(u.startswith("/confirm/") and r.status_code == 200 for u, r in answers.items())
    assert answers["/no-such-page/"].status_code == 404
    assert len(answers) >= 12
    assert problems(answers) == []
    # The preference page itself (the second visit of /preferences/ is skipped by the crawl).
    page = client.get("/preferences/")
    assert page.status_code == 200 and 'action="' in page.content.decode()
    assert problems({"/preferences/ (open)": page}) == []


def test_store_pages(client: Client, demo: None) -> None:
    manager = get_user_model().objects.get(username="store")
    device = store.device_enrol(
        store=Store.objects.get(code="paris-01"), name="Till 1", enrolled_by=manager
    )
    client.cookies[store.DEVICE_COOKIE] = store.device_cookie_value(device)
    client.force_login(manager)
    answers = crawl(client, ["/store/", "/store/capture/", "/store/thanks/", "/store/phone/done/"])
    assert answers["/store/capture/"].status_code == 200
    assert len(answers) >= 8
    assert problems(answers) == []


def test_admin_pages(client: Client, demo: None) -> None:
    verified_login(client, get_user_model().objects.get(username="admin"))
    answers = crawl(client, ["/admin/", "/admin/dashboard/", "/admin/otp/enrol/"])
    assert sum(1 for r in answers.values() if r.status_code == 200) >= 60
    assert any("/receipt/" in url for url in answers)
    assert problems(answers) == []


def test_embeddable_sign_up_form_keeps_the_policy_with_its_framers(
    client: Client, settings: Any
) -> None:
    settings.EMBED_FRAME_ANCESTORS = "https://www.brand.example"
    response = client.get("/subscribe/?embed=1")
    assert response["Content-Security-Policy"] == POLICY.replace(
        "frame-ancestors 'none'", "frame-ancestors https://www.brand.example"
    )
