"""The unsubscribe link: unsubscribe from everything (or something lighter), undo it in the same
visit. RFC 8058 one-click unsubscribe is the one POST that carries no cookie and no CSRF token.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from config.headers import never_cache
from consents import clock, links
from consents.http import client_ip, user_agent
from consents.labels import frequency_label
from consents.links import LinkError
from consents.models import Contact, Topic
from consents.vocab import Method
from preferences import center
from preferences import unsubscribe as lighter
from preferences.forms import LinkRequestForm
from preferences.services import (
    unsubscribe_all,
    unsubscribe_all_undoable,
    unsubscribe_undo,
    unsubscribed_from_all,
)
from preferences.views.common import bad_link, link_expired, page_language

UNSUBSCRIBE_POINT = "unsubscribe link"
# What an unsubscribe in this browser would restore, and for how long it may.
SESSION_UNDO = "unsubscribe_undo"
UNSUBSCRIBE_UNDO_SECONDS = 30 * 60


def _is_one_click(request: HttpRequest) -> bool:
    # RFC 8058 3.1: the body carries List-Unsubscribe=One-Click, form-encoded or multipart.
    return request.POST.get("List-Unsubscribe") == "One-Click"


@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """An unsubscribe link unsubscribes, and can undo that in the same visit: nothing else.

    It works for ``UNSUBSCRIBE_LINK_TTL`` after its email was sent (the one-click button of that
    email with it), and stops with "sign out of all links" or a change of address.
    """
    one_click = request.method == "POST" and _is_one_click(request)
    try:
        link = links.read("unsubscribe", token)
    except LinkError as exc:
        if exc.reason in ("expired", "revoked"):
            if one_click:
                return HttpResponse(
                    "This unsubscribe link no longer works.\n",
                    status=400,
                    content_type="text/plain; charset=utf-8",
                )
            return link_expired(request, exc, kind="unsubscribe")
        if one_click:
            return bad_link(request, exc.reason)
        # A cut or changed link: say so, and offer the form that emails a new one.
        status = 404 if exc.reason == "unknown" else 400
        context = {"reason": exc.reason, "kind": "unsubscribe", "form": LinkRequestForm()}
        return render(request, "preferences/link_expired.html", context, status=status)
    contact = link.contact
    assert contact is not None
    if one_click:
        # The mail provider posts without cookies or CSRF token; the signed token authorises.
        unsubscribe_all(
            contact=contact,
            method=Method.ONE_CLICK_UNSUBSCRIBE,
            ip_address=client_ip(request),
            user_agent=user_agent(request),
            collection_point=UNSUBSCRIBE_POINT,
        )
        return HttpResponse("Unsubscribed.\n", content_type="text/plain; charset=utf-8")
    return csrf_protect(_unsubscribe_page)(request, contact)


def _unsubscribe_page(request: HttpRequest, contact: Contact) -> HttpResponse:
    if request.method != "POST":
        received = lighter.received_by_email(contact)
        context = {
            "action": request.path,
            "email": lighter.masked(contact.email),
            "already": unsubscribed_from_all(contact),
            "received": received,
            "slower": [
                {"topic": r.topic, "slower_label": frequency_label(r.slower).lower()}
                for r in received
                if r.slower
            ],
            "pause_months": center.PAUSE_MONTHS,
        }
        return render(request, "preferences/unsubscribe.html", context)
    action = request.POST.get("action", "all")
    if action == "undo":
        return _unsubscribe_undo(request, contact)
    if action in ("topic", "less_often", "pause"):
        return _unsubscribe_lighter(request, contact, action)
    undo = unsubscribe_all_undoable(
        contact=contact,
        method=Method.UNSUBSCRIBE_LINK,
        ip_address=client_ip(request),
        user_agent=user_agent(request),
        collection_point=UNSUBSCRIBE_POINT,
    )
    if undo is not None and undo["choices"]:
        # Only this browser, only for a while: what to restore if they change their mind.
        request.session[SESSION_UNDO] = {
            **undo,
            "contact": contact.public_id,
            "at": clock.now().timestamp(),
        }
    context = {
        "action": request.path,
        "undo": _undo_for(request, contact) is not None,
        "email": lighter.masked(contact.email),
    }
    return render(request, "preferences/unsubscribe_done.html", context)


def _unsubscribe_lighter(request: HttpRequest, contact: Contact, action: str) -> HttpResponse:
    """This topic only, a break, or less often: each says what it did, or that nothing changed."""
    evidence = {
        "ip_address": client_ip(request),
        "user_agent": user_agent(request),
        "collection_point": UNSUBSCRIBE_POINT,
    }
    slug = request.POST.get("topic", "")
    topic = Topic.objects.filter(slug=slug).first()
    context: dict[str, Any] = {
        "action": request.path,
        "kind": action,
        "email": lighter.masked(contact.email),
    }
    if action == "topic":
        done = lighter.stop_topic(contact=contact, slug=slug, **evidence)
        context.update(done=done, topic=topic)
    elif action == "less_often":
        pace = lighter.less_often(contact=contact, slug=slug, language=page_language(), **evidence)
        context.update(done=bool(pace), topic=topic, pace=frequency_label(pace) if pace else "")
    else:
        try:
            months = int(request.POST.get("months", ""))
        except ValueError:
            months = 0
        if months not in center.PAUSE_MONTHS:
            context.update(done=False)
        else:
            until = lighter.pause(contact=contact, months=months, **evidence)
            context.update(done=True, until=until)
    status = 200 if context["done"] else 400
    return render(request, "preferences/unsubscribe_lighter.html", context, status=status)


def _undo_for(request: HttpRequest, contact: Contact) -> dict[str, Any] | None:
    undo = request.session.get(SESSION_UNDO)
    if not isinstance(undo, dict) or undo.get("contact") != contact.public_id:
        return None
    age = clock.now().timestamp() - float(undo.get("at", 0))
    return undo if 0 <= age <= UNSUBSCRIBE_UNDO_SECONDS else None


def _unsubscribe_undo(request: HttpRequest, contact: Contact) -> HttpResponse:
    undo = _undo_for(request, contact)
    request.session.pop(SESSION_UNDO, None)  # once
    done = undo is not None and unsubscribe_undo(
        contact=contact,
        undo=undo,
        ip_address=client_ip(request),
        user_agent=user_agent(request),
        collection_point=UNSUBSCRIBE_POINT,
    )
    return render(request, "preferences/unsubscribe_undone.html", {"done": done})
