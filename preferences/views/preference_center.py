"""The preference page: the way in (a link emailed on request, or in any of our emails), the page
itself, and what its forms do. Each action parses the form, calls one function of
``preferences.center`` (or ``preferences.access``), and answers with the page and what was saved.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template import engines
from django.template.loader import render_to_string
from django.urls import get_script_prefix, reverse
from django.utils import translation
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods
from markupsafe import Markup

from config import csrf
from config import jinja2 as config_jinja2
from config.headers import never_cache
from consents import catalogue, clock, links
from consents.http import client_ip, user_agent
from consents.links import LinkError
from consents.models import Contact
from preferences import access, center, pagecache, presenters, ratelimit
from preferences.forms import LinkRequestForm, phone_cleaned, preferences_choice
from preferences.services import notices_recorded
from preferences.views.common import (
    bad_link,
    ip_allowed,
    link_expired,
    page_language,
    too_many,
)

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
# What a save (or another action) says on the page it leads to: a cookie signed for this browser
# session, read once. In the session itself it cost two writes of the session per save (the
# message kept, then taken).
FLASH_COOKIE = "assent_saved"
FLASH_SECONDS = 120


# --- The way into the preference center ---------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    """Ask for a link: the answer is the same whether the address is known or not."""
    if request.method == "POST":
        if not ip_allowed(request, "preferences-link-ip"):
            return too_many(request)
        form = LinkRequestForm(request.POST)
        if form.is_valid():
            # Looked up and sent after the response: the same answer, in the same time.
            access.link_request_record(email=form.cleaned_data["email"], language=page_language())
            return redirect(reverse("home") + "?sent=1")
    else:
        form = LinkRequestForm()
    context = {"form": form, "sent": request.GET.get("sent") == "1"}
    return render(request, "preferences/home.html", context)


@never_cache
@require_GET
def preferences_open(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = links.read("preferences", token)
    except LinkError as exc:
        if exc.reason in ("expired", "revoked"):
            return link_expired(request, exc, kind="preferences")
        return bad_link(request, exc.reason)
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
    access.preferences_session_open(contact=link.contact, session_key=request.session.session_key)
    return redirect("preferences")


def _session_contact(
    request: HttpRequest, prefetched: pagecache.Prefetched | None = None
) -> Contact | None:
    """The person this session may act for: granted by a link, for as long as a link lives,
    while the address the link went to is still theirs (read with the session by
    ``pagecache.prefetch``, or now)."""
    public_id = request.session.get(SESSION_CONTACT)
    granted_at = request.session.get(SESSION_GRANTED_AT)
    if not isinstance(public_id, str) or not isinstance(granted_at, int | float):
        return None
    age = clock.now().timestamp() - granted_at
    if not 0 <= age <= settings.PREFERENCE_LINK_TTL.total_seconds():
        return None
    contact = pagecache.contact_or_read(public_id, prefetched)
    if contact is None or contact.link_version != request.session.get(SESSION_LINK_VERSION):
        return None  # signed out of all links since
    if not links.bound_to(contact.email, request.session.get(SESSION_ADDRESS)):
        return None  # the address changed since
    pagecache.acting_for(request.session, public_id)
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
    # A read: the session and the page kept for it come in one round trip; else the session
    # with the contact it acts for, when this process knows it.
    if request.method != "POST" and pagecache.enabled():
        kept = pagecache.prefetch(request.session)
    else:
        kept = pagecache.prefetch_contact(request.session)
    contact = _session_contact(request, kept)
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
    if FLASH_COOKIE in request.COOKIES:
        # Read once (a stale or forged one is dropped as well), with the page drawn afresh.
        response = _preferences_page(request, contact, flash=_flash(request))
        response.set_cookie(FLASH_COOKIE, "", max_age=0, **_flash_cookie())
        return response
    if not pagecache.enabled():
        return _preferences_page(request, contact)
    # Nothing to say about a save: the page drawn for the last read may still be the right one.
    language = page_language()
    found = pagecache.lookup(
        contact,
        language=language,
        entry=kept.entry if kept is not None else None,
        session_key=request.session.session_key,
    )
    if found.parts is None:
        return _preferences_page(request, contact, keep_for=found.catalog)
    return HttpResponse(pagecache.served(found.parts, csrf.token(request)))


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
    language = page_language()
    state = center.center_state(contact=contact, language=language)
    context = presenters.page_context(state, flash=flash, error=error)
    if keep_for is None:
        html = _draw(request, context, csrf_token=csrf.token(request))
        return HttpResponse(html, status=status if error else 200)
    # Drawn once with a placeholder for the CSRF token, which each response fills in.
    html = _draw(request, context, csrf_token=pagecache.CSRF_PLACEHOLDER)
    parts = pagecache.store(
        request.session.session_key,
        contact,
        language=language,
        catalog=keep_for,
        html=html,
        changes_at=state.changes_at,
    )
    return HttpResponse(pagecache.served(parts, csrf.token(request)))


def _draw(request: HttpRequest, context: dict[str, Any], *, csrf_token: str) -> str:
    """The page's body (its boxes: most of the page) drawn with Jinja2, in the site's layout."""
    pieces = body_pieces(context, csrf_token=csrf_token)
    if context["error"] or settings.DEBUG:
        # An error names itself in the title; in development the templates may change.
        layout = {
            "body": mark_safe("".join(pieces)),
            "error": context["error"],
            "csrf_token": csrf_token,
        }
        return render_to_string("preferences/preferences.html", layout, request=request)
    before, after = _layout(request)
    return "".join(
        (before.replace(_LAYOUT_CSRF, csrf_token), *pieces, after.replace(_LAYOUT_CSRF, csrf_token))
    )


def body_pieces(context: dict[str, Any], *, csrf_token: str) -> list[str]:
    """The page's body (``preferences/center.html``), in pieces to put together.

    The topics' fieldsets, drawn beforehand (``presenters.topic_context``: nine tenths of the
    page), are put in after the body is drawn around a mark for each: the template then writes,
    and its escaping pass reads (``config.jinja2.Template``), a tenth of the page, and the page
    is put together in one piece (``tests/preferences/test_presenters.py``: the body the
    template draws with the fieldsets in it)."""
    csrf_input = format_html(
        '<input type="hidden" name="csrfmiddlewaretoken" value="{}">', csrf_token
    )
    language = translation.get_language()
    body = config_jinja2.in_language(engines["jinja2"].env, language).get_template(
        "preferences/center.html"
    )
    gettext = config_jinja2.gettext_in(language)
    topics = context["topics"]
    marked = [{**topic, "html": _TOPIC_MARK} for topic in topics]
    # ``_`` too: the body's sentences then go straight to it, not through the i18n extension's
    # alias of ``gettext`` (two calls each).
    values = {**context, "csrf_input": csrf_input, "gettext": gettext, "_": gettext}
    between = body.render({**values, "topics": marked}).split(_TOPIC_MARK)
    if len(between) != len(topics) + 1:
        # The mark in what the person wrote (it cannot be guessed): drawn whole instead.
        return [body.render(values)]
    pieces = [between[0]]
    for topic, text in zip(topics, between[1:], strict=True):
        pieces += (topic["html"], text)
    return pieces


# Where each topic's fieldset goes in the body: characters no text of ours holds, and a part
# drawn at random per process, which no text a person gives can hold but by chance.
_TOPIC_MARK = Markup(f"\ue005{secrets.token_hex(16)}\ue005")


# Where the body and the CSRF token go in the layout (characters no text of ours holds).
_LAYOUT_BODY = "\ue001assent-body\ue001"
_LAYOUT_CSRF = "\ue002assent-csrf\ue002"
_layouts: dict[tuple[str | None, str], tuple[str, str]] = {}


def _layout(request: HttpRequest) -> tuple[str, str]:
    """The layout around the body (``preferences/preferences.html``), without an error: the
    same for every person, so drawn once per process, language and script prefix, with a mark
    where the CSRF token goes. What it shows besides comes from the settings (the brand, the
    controller), which only a test changes (``_settings_changed`` forgets it then)."""
    key = (translation.get_language(), get_script_prefix())
    found = _layouts.get(key)
    if found is None:
        layout = {"body": mark_safe(_LAYOUT_BODY), "error": "", "csrf_token": _LAYOUT_CSRF}
        html = render_to_string("preferences/preferences.html", layout, request=request)
        before, after = html.split(_LAYOUT_BODY)
        found = _layouts[key] = (before, after)
    return found


def _settings_changed(**kwargs: Any) -> None:
    _layouts.clear()


setting_changed.connect(_settings_changed)


def _flash_salt(request: HttpRequest) -> str:
    return f"preferences.flash:{request.session.session_key or ''}"


def _flash(request: HttpRequest) -> dict[str, Any] | None:
    """The message an action left for this session's next page, if any (and still fresh)."""
    if FLASH_COOKIE not in request.COOKIES:
        return None
    value = request.get_signed_cookie(
        FLASH_COOKIE, default=None, salt=_flash_salt(request), max_age=FLASH_SECONDS
    )
    try:
        flash = json.loads(value) if value else None
    except ValueError:
        return None
    return flash if isinstance(flash, dict) else None


def _done(request: HttpRequest, flash: dict[str, Any]) -> HttpResponse:
    response = redirect("preferences")
    response.set_signed_cookie(
        FLASH_COOKIE,
        json.dumps(flash, separators=(",", ":")),
        salt=_flash_salt(request),
        max_age=FLASH_SECONDS,
        **_flash_cookie(),
    )
    return response


def _flash_cookie() -> dict[str, Any]:
    """The message cookie's attributes, the same when it is set and when it is dropped."""
    return {
        "path": reverse("preferences"),
        "secure": settings.SESSION_COOKIE_SECURE,
        "httponly": True,
        "samesite": "Lax",
    }


def _save(request: HttpRequest, contact: Contact) -> HttpResponse:
    topics = {t.slug: t for t in catalogue.snapshot().active}
    try:
        choice = preferences_choice(request.POST, topics)
    except ValidationError as exc:
        return _preferences_page(request, contact, error=" ".join(exc.messages))
    language = page_language()
    changes = center.preferences_save(
        contact=contact,
        shown=choice.shown,
        wanted=choice.wanted,
        frequencies=choice.frequencies,
        notices=notices_recorded(topics.values(), language, choice.notices),
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
    access.data_download_request(contact=contact, language=page_language())
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
    access.preferences_sign_out(contact=contact)
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


_ACTIONS: dict[str, Callable[[HttpRequest, Contact], HttpResponse]] = {
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
