"""The public pages: sign-up, double opt-in confirmation, unsubscribe, the way into preferences.

Emailed links are opened by mail scanners: a GET only ever shows a page, a POST acts. The single
exception is RFC 8058 one-click unsubscribe, a POST that carries no cookie and no CSRF token.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from consents import clock
from consents.models import ConsentState, Contact, Event, Topic
from consents.vocab import Method
from preferences import devmail, links, ratelimit
from preferences.forms import SubscribeForm, channel_label, topic_groups
from preferences.links import Link, LinkError
from preferences.models import PendingSignup
from preferences.services import (
    ConfirmOutcome,
    signup_confirm,
    signup_for_token,
    signup_submit,
    signup_topics,
    unsubscribe_all,
)

logger = logging.getLogger(__name__)

# The preference center remembers who opened it, never the token itself.
SESSION_CONTACT = "preferences_contact"
SESSION_LINK_VERSION = "preferences_link_version"

STATUS_LABELS = {
    ConsentState.Status.OPTED_IN: _("Subscribed"),
    ConsentState.Status.PENDING: _("Waiting for your confirmation"),
    ConsentState.Status.INVALID: _("Not valid: we need to ask you again"),
    ConsentState.Status.OPTED_OUT: _("Unsubscribed"),
    ConsentState.Status.NONE: _("No choice made"),
}


# --- Helpers ------------------------------------------------------------------------------------


def _ip(request: HttpRequest) -> str | None:
    """The client's address; behind ``NUM_PROXIES`` trusted proxies, the one they saw."""
    proxies = settings.NUM_PROXIES
    if proxies:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [a for a in forwarded if a]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR") or None


def _user_agent(request: HttpRequest) -> str:
    return request.META.get("HTTP_USER_AGENT", "")[:1000]


def _language() -> str:
    language = (translation.get_language() or "fr")[:2]
    return language if language in ("fr", "en") else "fr"


def _bad_link(request: HttpRequest, reason: str) -> HttpResponse:
    """Tampered, cut or wrong-purpose links (400); links to something that is gone (404)."""
    status = 404 if reason == "unknown" else 400
    return render(request, "bad_link.html", {"reason": reason}, status=status)


def _is_embed(request: HttpRequest) -> bool:
    return request.GET.get("embed") == "1"


def _framable(response: HttpResponse) -> HttpResponse:
    """Let a brand's own site show this one response in an iframe; every other page is DENY."""
    response.xframe_options_exempt = True  # type: ignore[attr-defined]
    ancestors = settings.EMBED_FRAME_ANCESTORS
    response["Content-Security-Policy"] = f"frame-ancestors {ancestors}"
    return response


def _posted_from_our_page(request: HttpRequest) -> bool:
    """The browser says the form was posted from a page of ours (the ``Origin`` header).

    Inside a brand's iframe our pages are third-party: browsers withhold the SameSite=Lax CSRF
    cookie there, so the embedded form relies on the Origin header instead, which a forged
    cross-site POST cannot set to ours.
    """
    origin = request.META.get("HTTP_ORIGIN", "")
    if not origin or origin == "null":
        return False
    site = urlsplit(settings.SITE_URL)
    ours = {f"{request.scheme}://{request.get_host()}", f"{site.scheme}://{site.netloc}"}
    return origin in ours


def _too_many(request: HttpRequest, *, embed: bool = False) -> HttpResponse:
    response = render(request, "preferences/too_many.html", {"embed": embed}, status=429)
    response["Retry-After"] = "3600"
    return _framable(response) if embed else response


def _ip_allowed(request: HttpRequest) -> bool:
    return ratelimit.allow(
        "signup-ip",
        _ip(request) or "unknown",
        limit=settings.SIGNUP_MAX_PER_IP_PER_HOUR,
        window_seconds=3600,
    )


def _preferences_path(contact: Contact, payload: dict[str, Any]) -> str | None:
    """A fresh preference link, unless the person signed out of all links since this one.

    Confirmation and unsubscribe links survive "sign out of all links" (so that confirming and
    leaving always work); they must not become a way back into the preference center.
    """
    if payload.get("v") != contact.link_version:
        return None
    return reverse("preferences_open", args=[links.make_token("preferences", contact)])


def _choice_rows(signup: PendingSignup) -> list[dict[str, str]]:
    topics = {
        t.slug: t for t in Topic.objects.filter(slug__in=[c["topic"] for c in signup.choices])
    }
    return [
        {
            "topic": topics[c["topic"]].name if c["topic"] in topics else c["topic"],
            "channel": str(channel_label(c["channel"])),
        }
        for c in signup.choices
    ]


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "preferences/home.html")


# --- Sign-up ------------------------------------------------------------------------------------


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def subscribe(request: HttpRequest) -> HttpResponse:
    embed = _is_embed(request)
    if request.method == "POST" and embed and _posted_from_our_page(request):
        return _subscribe(request, embed=True)
    return csrf_protect(_subscribe)(request, embed=embed)


def _subscribe(request: HttpRequest, *, embed: bool) -> HttpResponse:
    groups = topic_groups(signup_topics(), _language())
    if request.method == "POST":
        if not _ip_allowed(request):
            return _too_many(request, embed=embed)
        form = SubscribeForm(request.POST, groups=groups)
        if form.is_bot:
            return redirect(_done_url(embed))  # the same answer as a success; nothing written
        if form.is_valid():
            source = request.GET.get("source", "").strip()[:100]
            data = form.cleaned_data
            try:
                signup_submit(
                    email=data["email"],
                    choices=form.choices,
                    language=data["language"],
                    notice_language=_language(),
                    first_name=data["first_name"],
                    phone=data["phone"],
                    collection_point=request.build_absolute_uri(),
                    source=source,
                    ip_address=_ip(request),
                    user_agent=_user_agent(request),
                )
            except ValidationError as exc:
                _service_errors(form, exc)
            else:
                # Whatever the outcome (sent, already subscribed, rate limited): one answer.
                return redirect(_done_url(embed))
    else:
        email = request.GET.get("email", "")[:254]
        form = SubscribeForm(initial={"email": email} if email else None, groups=groups)
    context = {
        "form": form,
        "groups": groups,
        "ticked": form.ticked(),
        "embed": embed,
        "action": request.get_full_path(),
        "expires_days": settings.DOI_CONFIRM_TTL.days,
    }
    response = render(request, "preferences/subscribe.html", context)
    return _framable(response) if embed else response


def _service_errors(form: SubscribeForm, exc: ValidationError) -> None:
    """The service re-checks everything (a topic may have closed since the page was shown)."""
    fields = exc.message_dict if hasattr(exc, "error_dict") else {}
    if "email" in fields:
        form.add_error("email", _("Enter a valid email address."))
    if "phone" in fields:
        form.add_error("phone", _("Enter your phone number to receive text messages or calls."))
    if not fields.keys() & {"email", "phone"}:
        form.add_error(
            None, _("One of your choices is no longer offered. Please check them again.")
        )


def _done_url(embed: bool) -> str:
    return reverse("subscribe_done") + ("?embed=1" if embed else "")


@require_GET
def subscribe_done(request: HttpRequest) -> HttpResponse:
    embed = _is_embed(request)
    context = {"embed": embed, "expires_days": settings.DOI_CONFIRM_TTL.days}
    response = render(request, "preferences/subscribe_done.html", context)
    return _framable(response) if embed else response


# --- Double opt-in confirmation ------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = links.read_token(
            "confirm", token, max_age=settings.DOI_CONFIRM_TTL, check_version=False
        )
    except LinkError as exc:
        if exc.reason == "expired":
            return _confirm_expired_link(request, token, exc.payload)
        return _bad_link(request, exc.reason)
    nonce = link.payload.get("s")
    if not isinstance(nonce, str):
        return _bad_link(request, "invalid")
    signup = signup_for_token(link.contact, nonce)
    if signup is None:
        return _bad_link(request, "unknown")

    if request.method == "POST":
        outcome, signup = signup_confirm(
            contact=link.contact,
            nonce=nonce,
            token_digest=links.token_digest(token),
            ip_address=_ip(request),
            user_agent=_user_agent(request),
        )
        if outcome is ConfirmOutcome.UNKNOWN or signup is None:
            return _bad_link(request, "unknown")
        if outcome is ConfirmOutcome.CONFIRMED:
            return _confirm_result(request, link, signup, "preferences/confirm_done.html")
    assert signup is not None
    if signup.confirmed_at is not None:
        return _confirm_result(request, link, signup, "preferences/confirm_already.html")
    if clock.now() > signup.expires_at:
        return _confirm_expired(request, token, link.contact, signup)
    context = {"choices": _choice_rows(signup), "action": request.path}
    return render(request, "preferences/confirm.html", context)


def _confirm_result(
    request: HttpRequest, link: Link, signup: PendingSignup, template: str
) -> HttpResponse:
    context = {
        "choices": _choice_rows(signup),
        "preferences_path": _preferences_path(link.contact, link.payload),
    }
    return render(request, template, context)


def _confirm_expired_link(
    request: HttpRequest, token: str, payload: dict[str, Any]
) -> HttpResponse:
    contact = Contact.objects.filter(public_id=payload.get("c")).first()
    nonce = payload.get("s")
    if contact is None:
        return _bad_link(request, "unknown")
    if not isinstance(nonce, str):
        return _bad_link(request, "invalid")
    signup = signup_for_token(contact, nonce)
    if signup is not None and signup.confirmed_at is not None:
        link = Link(contact=contact, payload=payload)
        return _confirm_result(request, link, signup, "preferences/confirm_already.html")
    return _confirm_expired(request, token, contact, signup)


def _confirm_expired(
    request: HttpRequest, token: str, contact: Contact, signup: PendingSignup | None
) -> HttpResponse:
    """An old link: offer a fresh one (the same choices), or the form again once forgotten."""
    if signup is not None:
        context = {"resend_action": reverse("confirm_resend", args=[token])}
    else:
        query = urlencode({"email": contact.email}) if contact.email else ""
        context = {"subscribe_path": reverse("subscribe") + (f"?{query}" if query else "")}
    return render(request, "preferences/confirm_expired.html", context)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def confirm_resend(request: HttpRequest, token: str) -> HttpResponse:
    if request.method != "POST":
        # Only a POST sends; a GET here (the language switch, a reload) goes back to the link.
        return redirect("confirm", token=token)
    # An expired link is the reason to be here: its signature must hold, not its age.
    try:
        link = links.read_token("confirm", token, max_age=None, check_version=False)
    except LinkError as exc:
        return _bad_link(request, exc.reason)
    nonce = link.payload.get("s")
    if not isinstance(nonce, str):
        return _bad_link(request, "invalid")
    if not _ip_allowed(request):
        return _too_many(request)
    signup = signup_for_token(link.contact, nonce)
    if signup is not None and signup.confirmed_at is not None:
        return _confirm_result(request, link, signup, "preferences/confirm_already.html")
    if signup is None or not link.contact.email:
        return _confirm_expired(request, token, link.contact, None)
    first_event = signup.choices[0].get("event") if signup.choices else None
    collection_point = Event.objects.filter(pk=first_event).values_list(
        "collection_point", flat=True
    ).first() or links.absolute(reverse("subscribe"))
    shown = {
        event.topic: event.notice
        for event in Event.objects.filter(
            pk__in=[c.get("event") for c in signup.choices]
        ).select_related("notice")
    }
    try:
        signup_submit(
            email=link.contact.email,
            choices=[(c["topic"], c["channel"]) for c in signup.choices],
            language=signup.locale,
            notices=shown,  # the wording they were shown when they signed up
            first_name=signup.first_name,
            phone=signup.phone,
            # Where the consent was collected: the original form, not this link.
            collection_point=collection_point,
            source=signup.source,
            ip_address=_ip(request),
            user_agent=_user_agent(request),
        )
    except ValidationError:
        # A topic was closed since: the person chooses again on the form.
        return _confirm_expired(request, token, link.contact, None)
    return redirect("subscribe_done")


# --- Unsubscribe --------------------------------------------------------------------------------

UNSUBSCRIBE_POINT = "unsubscribe link"


def _is_one_click(request: HttpRequest) -> bool:
    # RFC 8058 3.1: the body carries List-Unsubscribe=One-Click, form-encoded or multipart.
    return request.POST.get("List-Unsubscribe") == "One-Click"


@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    # Leaving must always work: no expiry, and "sign out of all links" does not revoke it.
    try:
        link = links.read_token("unsubscribe", token, max_age=None, check_version=False)
    except LinkError as exc:
        return _bad_link(request, exc.reason)
    if request.method == "POST" and _is_one_click(request):
        # The mail provider posts without cookies or CSRF token; the signed token authorises.
        unsubscribe_all(
            contact=link.contact,
            method=Method.ONE_CLICK_UNSUBSCRIBE,
            ip_address=_ip(request),
            user_agent=_user_agent(request),
            collection_point=UNSUBSCRIBE_POINT,
        )
        return HttpResponse("Unsubscribed.\n", content_type="text/plain; charset=utf-8")
    return csrf_protect(_unsubscribe_page)(request, link)


def _unsubscribe_page(request: HttpRequest, link: Link) -> HttpResponse:
    if request.method == "POST":
        unsubscribe_all(
            contact=link.contact,
            method=Method.UNSUBSCRIBE_LINK,
            ip_address=_ip(request),
            user_agent=_user_agent(request),
            collection_point=UNSUBSCRIBE_POINT,
        )
        context = {"preferences_path": _preferences_path(link.contact, link.payload)}
        return render(request, "preferences/unsubscribe_done.html", context)
    return render(request, "preferences/unsubscribe.html", {"action": request.path})


# --- The way into the preference center ---------------------------------------------------------


@never_cache
@require_GET
def preferences_open(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = links.read_token("preferences", token, max_age=settings.PREFERENCE_LINK_TTL)
    except LinkError as exc:
        if exc.reason in ("expired", "revoked"):
            return render(request, "preferences/link_expired.html", {"reason": exc.reason})
        return _bad_link(request, exc.reason)
    # A new session key: whatever was in this browser's session before is not carried over
    # under the same id (session fixation), and the token leaves the address bar.
    request.session.cycle_key()
    request.session[SESSION_CONTACT] = link.contact.public_id
    request.session[SESSION_LINK_VERSION] = link.contact.link_version
    return redirect("preferences")


def _session_contact(request: HttpRequest) -> Contact | None:
    public_id = request.session.get(SESSION_CONTACT)
    if not isinstance(public_id, str):
        return None
    contact = Contact.objects.filter(public_id=public_id).first()
    if contact is None or contact.link_version != request.session.get(SESSION_LINK_VERSION):
        return None  # erased, or signed out of all links since
    return contact


@never_cache
@require_GET
def preferences(request: HttpRequest) -> HttpResponse:
    contact = _session_contact(request)
    if contact is None:
        return render(request, "preferences/preferences_closed.html")
    states = list(ConsentState.objects.filter(contact=contact).order_by("topic", "channel"))
    topics = {t.slug: t for t in Topic.objects.filter(slug__in={s.topic for s in states})}
    rows = [
        {
            "topic": topics[s.topic].name if s.topic in topics else s.topic,
            "channel": channel_label(s.channel),
            "status": s.status,
            "status_label": STATUS_LABELS.get(s.status, s.status),
            "since": s.since,
        }
        for s in states
    ]
    context = {
        "rows": rows,
        "unsubscribe_path": reverse("unsubscribe", args=[links.make_token("unsubscribe", contact)]),
    }
    return render(request, "preferences/preferences.html", context)


# --- /dev/mail/: the mail the embedded default wrote to files -----------------------------------


@never_cache
@require_GET
def dev_mail(request: HttpRequest) -> HttpResponse:
    if not devmail.enabled():
        raise Http404
    context = {"mails": devmail.mail_list(), "folder": devmail.mail_dir()}
    return render(request, "preferences/dev_mail_list.html", context)


@never_cache
@require_GET
def dev_mail_message(request: HttpRequest, name: str) -> HttpResponse:
    if not devmail.enabled():
        raise Http404
    mails = devmail.mail_file(name)
    if mails is None:
        raise Http404
    response = render(request, "preferences/dev_mail_message.html", {"mails": mails})
    # The email's HTML is shown in a sandboxed srcdoc iframe: no script runs anywhere here.
    response["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    return response
