"""The public pages: sign-up, double opt-in confirmation, unsubscribe, the way into preferences.

Emailed links are opened by mail scanners: a GET only ever shows a page, a POST acts. The single
exception is RFC 8058 one-click unsubscribe, a POST that carries no cookie and no CSRF token.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from consents import catalogue, clock, links, proof, services
from consents.http import client_ip, user_agent
from consents.labels import METHOD_FOR_PERSON, STATUS_LABELS, channel_label, channel_words
from consents.links import LinkError
from consents.models import ConsentState, Contact, Event, Topic
from consents.vocab import ANY, EventType, Method, Reason
from preferences import center, data_summary, devmail, pagecache, ratelimit
from preferences import unsubscribe as lighter
from preferences.center import link_request_record
from preferences.forms import (
    FIRST_NAME_ONLY,
    LinkRequestForm,
    SubscribeForm,
    frequency_label,
    phone_cleaned,
    preferences_choice,
    shown_signed,
    topic_groups,
)
from preferences.models import PendingSignup
from preferences.services import (
    ConfirmOutcome,
    signup_confirm,
    signup_for_token,
    signup_submit,
    signup_topics,
    unsubscribe_all,
    unsubscribe_all_undoable,
    unsubscribe_undo,
    unsubscribed_from_all,
)

logger = logging.getLogger(__name__)

# The preference center remembers who opened it, never the token itself.
SESSION_CONTACT = "preferences_contact"
SESSION_LINK_VERSION = "preferences_link_version"
# The binding of the link that opened it: a change of address closes the session too.
SESSION_ADDRESS = "preferences_address"
# When the link was opened: the session's authorisation lasts as long as a link does.
SESSION_GRANTED_AT = "preferences_granted_at"
# The digest of the link that opened this session: it went to the address, so holding it proves
# control of that mailbox (the evidence of a "yes" by email given on the page).
SESSION_LINK_DIGEST = "preferences_link_digest"
SESSION_FLASH = "preferences_saved"


# --- Helpers ------------------------------------------------------------------------------------


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
    """Let the sites the operator named show this one response in an iframe; every other page,
    and this one while none is named, cannot be framed (config.middleware writes the policy)."""
    ancestors = settings.EMBED_FRAME_ANCESTORS
    if ancestors != "'none'":
        response.xframe_options_exempt = True  # type: ignore[attr-defined]
    response.csp_frame_ancestors = ancestors  # type: ignore[attr-defined]
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
        client_ip(request) or "unknown",
        limit=settings.SIGNUP_MAX_PER_IP_PER_HOUR,
        window_seconds=3600,
    )


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


# --- Sign-up ------------------------------------------------------------------------------------


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def subscribe(request: HttpRequest) -> HttpResponse:
    embed = _is_embed(request)
    if request.method == "POST" and embed and _posted_from_our_page(request):
        return _subscribe(request, embed=True)
    return csrf_protect(_subscribe)(request, embed=embed)


def _embed_options(request: HttpRequest, embed: bool) -> tuple[set[str], str]:
    """``?embed=1&topics=newsletter,deals&lang=en``: the topics the embedded form offers (all
    when none is named) and its fixed language ("" to let the person choose)."""
    if not embed:
        return set(), ""
    wanted = {
        slug.strip()
        for value in request.GET.getlist("topics")
        for slug in value.split(",")
        if slug.strip()
    }
    lang = request.GET.get("lang", "")
    return wanted, lang if lang in ("fr", "en") else ""


def _subscribe(request: HttpRequest, *, embed: bool) -> HttpResponse:
    only, lang = _embed_options(request, embed)
    if lang:
        translation.activate(lang)
        request.LANGUAGE_CODE = lang
    topics = signup_topics()
    if only and any(t.slug in only for t in topics):
        topics = [t for t in topics if t.slug in only]
    groups = topic_groups(topics, _language())
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
                    notices=form.notices,  # the wording the page showed, signed into it
                    first_name=data["first_name"],
                    phone=data["phone"],
                    collection_point=_form_address(request),
                    source=source,
                    ip_address=client_ip(request),
                    user_agent=user_agent(request),
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
        "fixed_language": lang,
        "needs_phone": any(o.needs_phone for g in groups for o in g.options),
        "action": request.get_full_path(),
        "expires_days": settings.DOI_CONFIRM_TTL.days,
    }
    response = render(request, "preferences/subscribe.html", context)
    return _framable(response) if embed else response


def _form_address(request: HttpRequest) -> str:
    """Where the form was, for the ledger: its address without the ``email`` that a link may
    have prefilled (the ledger is never erased, so it must never hold an address)."""
    query = [(k, v) for k, v in request.GET.items() if k != "email"]
    path = request.path + (f"?{urlencode(query)}" if query else "")
    return request.build_absolute_uri(path)


def _service_errors(form: SubscribeForm, exc: ValidationError) -> None:
    """The service re-checks everything (a topic may have closed since the page was shown)."""
    fields = exc.message_dict if hasattr(exc, "error_dict") else {}
    if "email" in fields:
        form.add_error("email", _("Enter a valid email address."))
    if "phone" in fields:
        form.add_error("phone", _("Enter your phone number to receive text messages or calls."))
    if "first_name" in fields:
        form.add_error("first_name", FIRST_NAME_ONLY)
    if not fields.keys() & {"email", "phone", "first_name"}:
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
    # A confirmation link confirms, and gives nothing else: no way into the preference center.
    try:
        link = links.read("confirm", token)
    except LinkError as exc:
        if exc.reason == "expired" and exc.contact is not None:
            return _confirm_expired_link(request, token, exc)
        if exc.reason in ("expired", "revoked"):
            # Sent to an address that is no longer the person's.
            return _confirm_expired(request, token, None)
        return _bad_link(request, exc.reason)
    contact = link.contact
    assert contact is not None
    nonce = link.payload.get("s")
    if not isinstance(nonce, str):
        return _bad_link(request, "invalid")
    signup = signup_for_token(contact, nonce)
    if signup is None:
        return _bad_link(request, "unknown")

    if request.method == "POST":
        outcome, signup = signup_confirm(
            contact=contact,
            nonce=nonce,
            token_digest=links.token_digest(token),
            ip_address=client_ip(request),
            user_agent=user_agent(request),
        )
        if outcome is ConfirmOutcome.UNKNOWN or signup is None:
            return _bad_link(request, "unknown")
        if outcome is ConfirmOutcome.CONFIRMED:
            return _confirm_result(request, signup, "preferences/confirm_done.html")
    assert signup is not None
    if signup.confirmed_at is not None:
        return _confirm_result(request, signup, "preferences/confirm_already.html")
    if clock.now() > signup.expires_at:
        return _confirm_expired(request, token, signup)
    context = {"choices": _choice_rows(signup), "action": request.path}
    return render(request, "preferences/confirm.html", context)


def _confirm_result(request: HttpRequest, signup: PendingSignup, template: str) -> HttpResponse:
    # The page offers the "/" form for a preference link, which goes to the mailbox.
    return render(request, template, {"choices": _choice_rows(signup)})


def _confirm_expired_link(request: HttpRequest, token: str, exc: LinkError) -> HttpResponse:
    """A genuine link past its lifetime (or of the earlier format): a fresh one goes to the
    person's current address."""
    contact = exc.contact
    assert contact is not None
    nonce = exc.payload.get("s")
    if not isinstance(nonce, str):
        return _bad_link(request, "invalid")
    signup = signup_for_token(contact, nonce)
    if signup is not None and signup.confirmed_at is not None:
        return _confirm_result(request, signup, "preferences/confirm_already.html")
    return _confirm_expired(request, token, signup, prefill=contact if exc.same_address else None)


def _confirm_expired(
    request: HttpRequest,
    token: str,
    signup: PendingSignup | None,
    *,
    prefill: Contact | None = None,
) -> HttpResponse:
    """An old link: offer a fresh one (the same choices), or the form again once forgotten.

    ``prefill`` only when the link went to the person's current address: the form is then
    filled in with it (the holder of the link knows it already).
    """
    if signup is not None:
        context = {"resend_action": reverse("confirm_resend", args=[token])}
    else:
        email = prefill.email if prefill is not None else None
        query = urlencode({"email": email}) if email else ""
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
        link = links.read("confirm", token, expired_ok=True)
    except LinkError as exc:
        if exc.reason == "expired" and exc.contact is not None:
            # The earlier format: the fresh link goes to the current address all the same.
            link = links.Link(contact=exc.contact, payload=exc.payload)
            same_address = False
        elif exc.reason in ("expired", "revoked"):
            return _confirm_expired(request, token, None)
        else:
            return _bad_link(request, exc.reason)
    else:
        same_address = True
    contact = link.contact
    assert contact is not None
    prefill = contact if same_address else None
    nonce = link.payload.get("s")
    if not isinstance(nonce, str):
        return _bad_link(request, "invalid")
    if not _ip_allowed(request):
        return _too_many(request)
    signup = signup_for_token(contact, nonce)
    if signup is not None and signup.confirmed_at is not None:
        return _confirm_result(request, signup, "preferences/confirm_already.html")
    if signup is None or not contact.email:
        return _confirm_expired(request, token, None, prefill=prefill)
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
            email=contact.email,
            choices=[(c["topic"], c["channel"]) for c in signup.choices],
            language=signup.locale,
            notices=shown,  # the wording they were shown when they signed up
            first_name=_still_a_first_name(signup.first_name),
            phone=signup.phone,
            # Where the consent was collected: the original form, not this link.
            collection_point=collection_point,
            source=signup.source,
            ip_address=client_ip(request),
            user_agent=user_agent(request),
        )
    except ValidationError:
        # A topic was closed since: the person chooses again on the form.
        return _confirm_expired(request, token, None, prefill=prefill)
    return redirect("subscribe_done")


def _still_a_first_name(value: str) -> str:
    """A sign-up kept from before the first-name rules: the new email greets no one instead."""
    try:
        return services.normalize_first_name(value)
    except ValidationError:
        return ""


# --- Unsubscribe --------------------------------------------------------------------------------

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
            return _link_expired(request, exc, kind="unsubscribe")
        if one_click:
            return _bad_link(request, exc.reason)
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
        pace = lighter.less_often(contact=contact, slug=slug, language=_language(), **evidence)
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


# --- "Download my data": the one-time link emailed from the preference page ---------------------


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def data_download(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button (mail scanners open links), POST downloads, once."""
    try:
        link = links.read("data_download", token)
    except LinkError as exc:
        if exc.reason in ("expired", "revoked"):
            return render(request, "preferences/data_download.html", {"state": "expired"})
        return _bad_link(request, exc.reason)
    contact = link.contact
    assert contact is not None
    downloads_before = link.payload.get("n")
    if not isinstance(downloads_before, int):
        return _bad_link(request, "invalid")
    if request.method == "POST":
        data = center.data_download(contact=contact, downloads_before=downloads_before)
        if data is not None:
            if request.POST.get("format") == "json":
                return proof.json_file(data, f"my-data-{contact.public_id}.json")
            # A page to read, in the person's language; the JSON file is its second download.
            translation.activate(contact.locale)
            request.LANGUAGE_CODE = contact.locale
            context = data_summary.summary(contact, data)
            return render(request, "preferences/data_summary.html", context)
    elif center.self_exports(contact) == downloads_before:
        return render(
            request, "preferences/data_download.html", {"state": "ready", "action": request.path}
        )
    return render(request, "preferences/data_download.html", {"state": "used"})


# --- The way into the preference center ---------------------------------------------------------


def _link_request_page(
    request: HttpRequest, template: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    return render(request, template, context, status=status)


@require_http_methods(["GET", "HEAD", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    """Ask for a link: the answer is the same whether the address is known or not."""
    if request.method == "POST":
        if not ratelimit.allow(
            "preferences-link-ip",
            client_ip(request) or "unknown",
            limit=settings.SIGNUP_MAX_PER_IP_PER_HOUR,
            window_seconds=3600,
        ):
            return _too_many(request)
        form = LinkRequestForm(request.POST)
        if form.is_valid():
            # Looked up and sent after the response: the same answer, in the same time.
            link_request_record(email=form.cleaned_data["email"], language=_language())
            return redirect(reverse("home") + "?sent=1")
    else:
        form = LinkRequestForm()
    context = {"form": form, "sent": request.GET.get("sent") == "1"}
    return render(request, "preferences/home.html", context)


def _link_expired(request: HttpRequest, exc: LinkError, *, kind: str) -> HttpResponse:
    """A genuine link that no longer works: say why, and offer the form that emails a new one.

    The form names the address only when the link went to it: after a change of address, an
    old link must not reveal the new one.
    """
    email = exc.contact.email if exc.contact is not None and exc.same_address else ""
    context = {
        "reason": exc.reason,
        "kind": kind,
        "form": LinkRequestForm(initial={"email": email} if email else None),
    }
    return render(request, "preferences/link_expired.html", context)


@never_cache
@require_GET
def preferences_open(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = links.read("preferences", token)
    except LinkError as exc:
        if exc.reason in ("expired", "revoked"):
            return _link_expired(request, exc, kind="preferences")
        return _bad_link(request, exc.reason)
    contact = link.contact
    assert contact is not None
    # A new session key: whatever was in this browser's session before is not carried over
    # under the same id (session fixation), and the token leaves the address bar.
    request.session.cycle_key()
    request.session[SESSION_CONTACT] = contact.public_id
    request.session[SESSION_LINK_VERSION] = contact.link_version
    request.session[SESSION_ADDRESS] = link.payload["a"]
    request.session[SESSION_GRANTED_AT] = clock.now().timestamp()
    request.session[SESSION_LINK_DIGEST] = links.token_digest(token)
    if request.session.session_key is None:
        request.session.save()
    center.preferences_session_open(contact=link.contact, session_key=request.session.session_key)
    return redirect("preferences")


def _session_contact(request: HttpRequest) -> Contact | None:
    """The person this session may act for: granted by a link, for as long as a link lives,
    while the address the link went to is still theirs."""
    public_id = request.session.get(SESSION_CONTACT)
    granted_at = request.session.get(SESSION_GRANTED_AT)
    if not isinstance(public_id, str) or not isinstance(granted_at, int | float):
        return None
    age = clock.now().timestamp() - granted_at
    if not 0 <= age <= settings.PREFERENCE_LINK_TTL.total_seconds():
        return None
    contact = pagecache.contact_for_page(public_id)
    if contact is None or contact.link_version != request.session.get(SESSION_LINK_VERSION):
        return None  # signed out of all links since
    if not links.bound_to(contact.email, request.session.get(SESSION_ADDRESS)):
        return None  # the address changed since
    return contact


def _center_request(request: HttpRequest) -> center.Request:
    digest = request.session.get(SESSION_LINK_DIGEST)
    return center.Request(
        ip_address=client_ip(request),
        user_agent=user_agent(request),
        collection_point=links.absolute(reverse("preferences")),
        link_digest=digest if isinstance(digest, str) else "",
    )


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def preferences(request: HttpRequest) -> HttpResponse:
    contact = _session_contact(request)
    if contact is None:
        for key in (
            SESSION_CONTACT,
            SESSION_LINK_VERSION,
            SESSION_ADDRESS,
            SESSION_GRANTED_AT,
            SESSION_LINK_DIGEST,
        ):
            request.session.pop(key, None)
        status = 403 if request.method == "POST" else 200
        context = {"form": LinkRequestForm()}
        return render(request, "preferences/preferences_closed.html", context, status=status)
    # The page speaks the language the person chose here, remembered on the contact.
    translation.activate(contact.locale)
    request.LANGUAGE_CODE = contact.locale
    if request.method == "POST":
        action = request.POST.get("action", "save")
        handler = _ACTIONS.get(action)
        if handler is None:
            return _preferences_page(request, contact, error=_("This action is not offered."))
        return handler(request, contact)
    flash = request.session.pop(SESSION_FLASH, None)
    if flash or not pagecache.enabled():
        return _preferences_page(request, contact, flash=flash)
    # Nothing to say about a save: the page drawn for the last read may still be the right one.
    language = _language()
    found = pagecache.lookup(contact, language=language)
    if found.html is None:
        return _preferences_page(request, contact, keep_for=found.catalog)
    return HttpResponse(found.html.replace(pagecache.CSRF_PLACEHOLDER, get_token(request)))


def _preferences_page(
    request: HttpRequest,
    contact: Contact,
    *,
    flash: dict[str, Any] | None = None,
    error: str = "",
    status: int = 400,
    keep_for: str | None = None,
) -> HttpResponse:
    """Draw the page; with ``keep_for`` (the catalog version read), keep it in the page cache."""
    language = _language()
    state = center.center_state(contact=contact, language=language)
    words = _Words()
    paused = (
        formats.date_format(timezone.localtime(state.pause_until), "DATE_FORMAT")
        if state.pause_until
        else ""
    )
    context = {
        "state": state,
        "topics": [_topic_context(view, words, paused) for view in state.topics],
        "notices_signed": shown_signed({view.topic.slug: view.notice for view in state.topics}),
        "history": [_history_row(e, state.topic_names) for e in state.history if _shown(e)],
        "saved": _flash_lines(flash, state.topic_names) if flash else None,
        "error": error,
        "pause_months": center.PAUSE_MONTHS,
    }
    if keep_for is None:
        status = status if error else 200
        return render(request, "preferences/preferences.html", context, status=status)
    # Drawn once with a placeholder for the CSRF token, which each response fills in.
    context["csrf_token"] = pagecache.CSRF_PLACEHOLDER
    html = render_to_string("preferences/preferences.html", context, request=request)
    pagecache.store(
        contact,
        language=language,
        catalog=keep_for,
        html=html,
        changes_at=state.changes_at,
    )
    return HttpResponse(html.replace(pagecache.CSRF_PLACEHOLDER, get_token(request)))


NO_ADDRESS = {
    "email": _("We have no email address for you."),
    "sms": _("We have no mobile phone number for you: add one under “Your contact details”."),
    "phone": _("We have no phone number for you: add one under “Your contact details”."),
    "postal": _("We have no postal address for you: add one under “Your contact details”."),
    "push": _("Notifications need our app, which you have not installed."),
}
STATE_LABELS = {
    **STATUS_LABELS,
    ConsentState.Status.NONE: _("Not subscribed"),
    "covered": _("Sent to you without a subscription"),
}
COVERED_EXPLANATIONS = {
    Reason.SOFT_OPT_IN: _(
        "You bought from us: the law lets us send you offers for similar products until you "
        "say no. Untick the box to stop them."
    ),
    Reason.LEGITIMATE_INTEREST: _(
        "The law lets us send you offers by post until you say no. Untick the box to stop them."
    ),
    Reason.GENERIC_ADDRESS: _(
        "This is a company mailbox: the law lets us write to it until you say no. Untick the box "
        "to stop."
    ),
    Reason.CONTRACT_IN_PROGRESS: _(
        "You have a contract with us for a related product: we may call you about it until you "
        "say no. Untick the box to stop."
    ),
    Reason.CALLBACK_REQUESTED: _(
        "You asked us to call you back: we may do so for 30 days. Untick the box to cancel."
    ),
}
COVERED_DEFAULT = _(
    "The law lets us send you these messages without a subscription, until you say no. Untick "
    "the box to stop them."
)


SINCE = _("since %(date)s")
STATE_EXPLANATIONS = {
    ConsentState.Status.PENDING: _(
        "Open the email we sent you and click its link to confirm. Nothing is sent to you "
        "before that."
    ),
    ConsentState.Status.INVALID: _(
        "Your earlier agreement was not given properly. Tick the box to say yes again."
    ),
    ConsentState.Status.OPTED_OUT: _("You said no: we do not send you these."),
    ConsentState.Status.OPTED_IN: _("You said yes: we send you these."),
    ConsentState.Status.NONE: _("We do not send you these."),
}


class _Words:
    """Each lazy translation turned into text once per page: a page has dozens of boxes."""

    def __init__(self) -> None:
        self.cache: dict[int, str] = {}

    def __call__(self, lazy: Any) -> str:
        key = id(lazy)
        if key not in self.cache:
            self.cache[key] = str(lazy)
        return self.cache[key]


PAUSED_LABEL = _("Subscribed, paused until %(date)s")
PAUSED_EXPLANATION = _("We send you nothing until then; it starts again by itself.")


def _cell_context(cell: center.Cell, words: _Words, paused: str = "") -> dict[str, Any]:
    """Everything one box shows, as plain strings; ``paused``: the end of a pause, as shown."""
    state = cell.state
    since = ""
    if cell.since and state not in ("covered", ConsentState.Status.NONE) and not paused:
        date = formats.date_format(timezone.localtime(cell.since), "DATE_FORMAT")
        since = " · " + words(SINCE) % {"date": date}
    state_label = words(STATE_LABELS.get(state, state))
    if not cell.has_address:
        explanation = words(NO_ADDRESS.get(cell.channel, ""))
    elif paused and cell.receiving:
        state_label = words(PAUSED_LABEL) % {"date": paused}
        explanation = words(PAUSED_EXPLANATION)
    elif state == "covered":
        explanation = words(COVERED_EXPLANATIONS.get(cell.covered_by or "", COVERED_DEFAULT))
    else:
        explanation = words(STATE_EXPLANATIONS.get(state, STATE_EXPLANATIONS["none"]))
    return {
        "value": cell.value,
        "id": cell.dom_id,
        "shown": cell.has_address,
        "checked": cell.receiving,
        "label": words(channel_label(cell.channel)),
        "state": "paused" if paused and cell.receiving and cell.has_address else state,
        "state_label": state_label,
        "since": since,
        "explanation": explanation,
    }


# One box of the page, built with format_html rather than template tags: a page shows dozens of
# them, and this is the hot loop of its rendering (see bench/PREFERENCES.md).
CELL_HTML = (
    '<li class="cell">{shown}<div class="check">'
    '<input type="checkbox" name="on" value="{value}" id="{id}"{checked}{disabled}'
    ' aria-describedby="{id}-state"><label for="{id}">{label}</label></div>'
    '<p class="state state-{state}" id="{id}-state"><strong class="state-label">{state_label}'
    "</strong>{since}. {explanation}</p></li>"
)
SHOWN_HTML = '<input type="hidden" name="shown" value="{}">'
RADIO_HTML = (
    '<div class="check"><input type="radio" name="frequency-{slug}" value="{value}"'
    ' id="frequency-{slug}-{value}"{checked}><label for="frequency-{slug}-{value}">{label}'
    "</label></div>"
)


def _cell_html(c: dict[str, Any]) -> str:
    return format_html(
        CELL_HTML,
        shown=format_html(SHOWN_HTML, c["value"]) if c["shown"] else "",
        value=c["value"],
        id=c["id"],
        checked=mark_safe(" checked") if c["checked"] else "",
        disabled="" if c["shown"] else mark_safe(" disabled"),
        label=c["label"],
        state=c["state"],
        state_label=c["state_label"],
        since=c["since"],
        explanation=c["explanation"],
    )


def _topic_context(view: center.TopicView, words: _Words, paused: str = "") -> dict[str, Any]:
    topic = view.topic
    radios = [
        format_html(
            RADIO_HTML,
            slug=topic.slug,
            value=value,
            checked=mark_safe(" checked") if value == view.frequency else "",
            label=frequency_label(value),
        )
        for value in topic.frequencies
    ]
    return {
        "slug": topic.slug,
        "name": topic.name,
        "description": topic.description,
        "notice": view.notice,
        "cells": mark_safe(
            "".join(_cell_html(_cell_context(c, words, paused)) for c in view.cells)
        ),
        "frequencies": mark_safe("".join(radios)),
    }


HISTORY_TYPES = {
    EventType.OPT_IN,
    EventType.DOI_CONFIRMED,
    EventType.OPT_OUT,
    EventType.PAUSE,
    EventType.COMPLAINT,
    EventType.CALLBACK_REQUEST,
}


def _shown(event: Event) -> bool:
    return event.type in HISTORY_TYPES


def _topic_name(slug: str, topics: dict[str, Topic]) -> str:
    return topics[slug].name if slug in topics else slug


def _history_choice(event: Event, topics: dict[str, Topic]) -> str:
    topic = _topic_name(event.topic, topics)
    channel = channel_words(event.channel)
    if event.type == EventType.OPT_IN:
        if event.data.get("doi") == "pending":
            return _("Yes to “%(topic)s” by %(channel)s, to be confirmed by email") % {
                "topic": topic,
                "channel": channel,
            }
        return _("Yes to “%(topic)s” by %(channel)s") % {"topic": topic, "channel": channel}
    if event.type == EventType.DOI_CONFIRMED:
        return _("Confirmed “%(topic)s” by %(channel)s") % {"topic": topic, "channel": channel}
    if event.type == EventType.OPT_OUT:
        if event.topic == ANY and event.channel == ANY:
            return str(_("Unsubscribed from all marketing"))
        if event.topic == ANY:
            return _("No to all marketing by %(channel)s") % {"channel": channel}
        if event.channel == ANY:
            return _("No to “%(topic)s” on every channel") % {"topic": topic}
        return _("No to “%(topic)s” by %(channel)s") % {"topic": topic, "channel": channel}
    if event.type == EventType.PAUSE:
        if center.is_resume(event):
            return str(_("Messages resumed"))
        until = event.data.get("until", "")
        end = formats.date_format(
            timezone.localtime(datetime.fromisoformat(until.replace("Z", "+00:00"))),
            "DATE_FORMAT",
        )
        return _("All marketing paused until %(date)s") % {"date": end}
    if event.type == EventType.COMPLAINT:
        return str(_("Reported one of our emails as spam"))
    return str(_("Asked us to call back"))


def _history_row(event: Event, topics: dict[str, Topic]) -> dict[str, Any]:
    how = METHOD_FOR_PERSON.get(event.method, event.method) if event.method else ""
    if event.type == EventType.COMPLAINT:
        how = _("From your email program")
    return {
        "at": event.occurred_at,
        "choice": _history_choice(event, topics),
        "how": how,
        "notice": event.notice,
    }


def _flash_lines(flash: dict[str, Any], topics: dict[str, Topic]) -> list[str]:
    """What was saved, in words."""
    kind = flash.get("kind")
    if kind in DETAILS_DONE:
        return [str(DETAILS_DONE[kind])]
    if kind == "paused":
        until = datetime.fromisoformat(flash["until"])
        date = formats.date_format(timezone.localtime(until), "DATE_FORMAT")
        return [_("All our marketing is paused until %(date)s.") % {"date": date}]
    if kind == "resumed":
        return [str(_("Your messages have resumed: you receive again what you chose."))]
    if kind == "not_paused":
        return [str(_("Nothing was paused: nothing has changed."))]
    if kind == "unsubscribed":
        return [
            str(
                _(
                    "You are unsubscribed from all our marketing. Messages about your orders and "
                    "your account continue."
                )
            )
        ]
    if kind == "already_unsubscribed":
        return [str(_("You were already unsubscribed from everything: nothing has changed."))]
    if kind == "language":
        return [str(_("This page and our messages are now in English."))]
    if kind == "download_sent":
        minutes = int(settings.DATA_DOWNLOAD_LINK_TTL.total_seconds() // 60)
        return [
            ngettext(
                "We have emailed you a link to download your data. It works once, for %(n)d "
                "minute.",
                "We have emailed you a link to download your data. It works once, for %(n)d "
                "minutes.",
                minutes,
            )
            % {"n": minutes}
        ]
    lines = []
    for change in flash.get("changes", []):
        values = {
            "topic": _topic_name(change["topic"], topics),
            "channel": channel_words(change["channel"]),
            "frequency": frequency_label(change["frequency"]).lower(),
        }
        lines.append(
            {
                center.ChangeKind.SUBSCRIBED: _("You now receive “%(topic)s” by %(channel)s."),
                center.ChangeKind.PENDING: _(
                    "“%(topic)s” by %(channel)s: we have sent you an email to confirm. Nothing "
                    "is sent to you before you click its link."
                ),
                center.ChangeKind.UNSUBSCRIBED: _(
                    "You no longer receive “%(topic)s” by %(channel)s."
                ),
                center.ChangeKind.FREQUENCY: _("“%(topic)s”: %(frequency)s from now on."),
            }[center.ChangeKind(change["kind"])]
            % values
        )
    return lines or [str(_("Nothing has changed: your choices were already saved."))]


def _done(request: HttpRequest, flash: dict[str, Any]) -> HttpResponse:
    request.session[SESSION_FLASH] = flash
    return redirect("preferences")


def _save(request: HttpRequest, contact: Contact) -> HttpResponse:
    topics = {t.slug: t for t in catalogue.snapshot().active}
    try:
        choice = preferences_choice(request.POST, topics)
    except ValidationError as exc:
        return _preferences_page(request, contact, error=" ".join(exc.messages))
    language = _language()
    shown_notices = center.notices_for(topics.values(), language)
    # The wording the page showed, as the server signed it into the page.
    shown_notices.update(choice.notices or {})
    changes = center.preferences_save(
        contact=contact,
        shown=choice.shown,
        wanted=choice.wanted,
        frequencies=choice.frequencies,
        notices=shown_notices,
        language=language,
        request=_center_request(request),
    )
    return _done(request, {"kind": "saved", "changes": [c.as_dict() for c in changes]})


def _pause(request: HttpRequest, contact: Contact) -> HttpResponse:
    # Compared as text: "²".isdigit() is true, and int("²") raises.
    offered = {str(m): m for m in center.PAUSE_MONTHS}
    months = offered.get(request.POST.get("months", ""))
    if months is None:
        return _preferences_page(request, contact, error=_("This pause is not offered."))
    until = center.preferences_pause(
        contact=contact, months=months, request=_center_request(request)
    )
    return _done(request, {"kind": "paused", "until": until.isoformat()})


def _resume(request: HttpRequest, contact: Contact) -> HttpResponse:
    resumed = center.preferences_resume(contact=contact, request=_center_request(request))
    return _done(request, {"kind": "resumed" if resumed else "not_paused"})


def _download_data(request: HttpRequest, contact: Contact) -> HttpResponse:
    """The person's own access request (GDPR art. 15). The data leaves only through a one-time
    link emailed to them: an open page, or a link someone else got hold of, is not enough."""
    if not contact.email:
        return _preferences_page(request, contact, error=_("We have no email address for you."))
    if not ratelimit.allow(
        "access-export",
        contact.public_id,
        limit=settings.ACCESS_EXPORT_MAX_PER_DAY,
        window_seconds=24 * 3600,
    ):
        error = _(
            "You have already asked for your data several times today. Please try again tomorrow."
        )
        return _preferences_page(request, contact, error=error, status=429)
    center.data_download_request(contact=contact, language=_language())
    return _done(request, {"kind": "download_sent"})


def _unsubscribe_all(request: HttpRequest, contact: Contact) -> HttpResponse:
    done = center.preferences_unsubscribe_all(contact=contact, request=_center_request(request))
    return _done(request, {"kind": "unsubscribed" if done else "already_unsubscribed"})


def _switch_language(request: HttpRequest, contact: Contact) -> HttpResponse:
    language = request.POST.get("language", "")
    if language not in ("fr", "en"):
        return _preferences_page(request, contact, error=_("This language is not offered."))
    center.preferences_language(contact=contact, language=language)
    translation.activate(language)
    response = _done(request, {"kind": "language"})
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )
    return response


def _sign_out(request: HttpRequest, contact: Contact) -> HttpResponse:
    center.preferences_sign_out(contact=contact)
    request.session.flush()
    return render(request, "preferences/signed_out.html", {"form": LinkRequestForm()})


def _phone(request: HttpRequest, contact: Contact) -> HttpResponse:
    """Add, change or remove the mobile number: a new number receives nothing until the person
    ticks what they want on it."""
    try:
        number = phone_cleaned(request.POST.get("phone", "")[:32])
    except ValidationError as exc:
        return _preferences_page(request, contact, error=" ".join(exc.messages))
    done = center.preferences_phone(contact=contact, phone=number, request=_center_request(request))
    return _done(request, {"kind": f"phone_{done}"})


def _postal(request: HttpRequest, contact: Contact) -> HttpResponse:
    try:
        done = center.preferences_postal_address(
            contact=contact,
            postal_address=request.POST.get("postal_address", "")[:2000],
            request=_center_request(request),
        )
    except ValidationError:
        error = _("Enter a postal address of at most 500 characters.")
        return _preferences_page(request, contact, error=error)
    return _done(request, {"kind": f"postal_{done}"})


DETAILS_DONE = {
    "phone_added": _("Your mobile number was added. Tick above what you want to receive on it."),
    "phone_changed": _(
        "Your mobile number was changed. Nothing is sent to the new number until you tick what "
        "you want on it."
    ),
    "phone_removed": _("Your mobile number was removed: we send nothing more to it."),
    "phone_same": _("This number was already on file: nothing has changed."),
    "postal_saved": _("Your postal address was saved."),
    "postal_same": _("This address was already on file: nothing has changed."),
}


_ACTIONS = {
    "phone": _phone,
    "postal": _postal,
    "save": _save,
    "pause": _pause,
    "resume": _resume,
    "unsubscribe_all": _unsubscribe_all,
    "download_data": _download_data,
    "language": _switch_language,
    "sign_out": _sign_out,
}


# --- /dev/mail/: the mail the embedded default wrote to files -----------------------------------


@never_cache
@require_GET
def dev_mail(request: HttpRequest) -> HttpResponse:
    if not devmail.shown_to(client_ip(request)):
        raise Http404
    context = {"mails": devmail.mail_list(), "folder": devmail.mail_dir()}
    return render(request, "preferences/dev_mail_list.html", context)


@never_cache
@require_GET
def dev_mail_message(request: HttpRequest, name: str) -> HttpResponse:
    if not devmail.shown_to(client_ip(request)):
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
