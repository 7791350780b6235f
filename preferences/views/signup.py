"""Sign-up and its double opt-in confirmation.

Emailed links are opened by mail scanners: a GET only ever shows a page, a POST acts.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from consents import catalogue, clock, links
from consents.http import client_ip, user_agent
from consents.labels import channel_label
from consents.links import LinkError
from consents.models import Contact, Topic
from preferences.forms import FIRST_NAME_ONLY, SubscribeForm, topic_groups
from preferences.models import PendingSignup
from preferences.services import (
    ConfirmOutcome,
    signup_confirm,
    signup_for_token,
    signup_resend,
    signup_submit,
    signup_topics,
)
from preferences.views.common import (
    bad_link,
    framable,
    ip_allowed,
    is_embed,
    page_language,
    posted_from_our_page,
    too_many,
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
    embed = is_embed(request)
    if request.method == "POST" and embed and posted_from_our_page(request):
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
    snapshot = catalogue.snapshot()
    topics = signup_topics(snapshot)
    if only and any(t.slug in only for t in topics):
        topics = [t for t in topics if t.slug in only]
    groups = topic_groups(topics, page_language())
    if request.method == "POST":
        if not ip_allowed(request):
            return too_many(request, embed=embed)
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
    if not form.is_bound and not context["ticked"]:
        context["choices_html"] = _choices_html(snapshot, context, only, embed, lang)
    response = render(request, "preferences/subscribe.html", context)
    return framable(response) if embed else response


CHOICES_TEMPLATE = "preferences/_subscribe_choices.html"


def _choices_html(
    snapshot: catalogue.Snapshot, context: dict, only: set[str], embed: bool, lang: str
) -> str:
    """The unticked boxes, the name, phone and language fields of a form shown for the first
    time: the same for every visitor of one page in one language until a topic or a notice
    changes, so drawn once per catalogue snapshot (most of the page's drawing time)."""
    key = ("signup", translation.get_language(), page_language(), embed, lang, *sorted(only))
    fragments = snapshot.fragments
    html = fragments.get(key)
    if html is None:
        html = fragments[key] = render_to_string(CHOICES_TEMPLATE, context)
    return mark_safe(html)  # noqa: S308 - drawn by our template, from the catalogue alone


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
    embed = is_embed(request)
    context = {"embed": embed, "expires_days": settings.DOI_CONFIRM_TTL.days}
    response = render(request, "preferences/subscribe_done.html", context)
    return framable(response) if embed else response


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
        return bad_link(request, exc.reason)
    contact = link.contact
    assert contact is not None
    nonce = link.payload.get("s")
    if not isinstance(nonce, str):
        return bad_link(request, "invalid")
    signup = signup_for_token(contact, nonce)
    if signup is None:
        return bad_link(request, "unknown")

    if request.method == "POST":
        outcome, signup = signup_confirm(
            contact=contact,
            nonce=nonce,
            token_digest=links.token_digest(token),
            ip_address=client_ip(request),
            user_agent=user_agent(request),
        )
        if outcome is ConfirmOutcome.UNKNOWN or signup is None:
            return bad_link(request, "unknown")
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
        return bad_link(request, "invalid")
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
            return bad_link(request, exc.reason)
    else:
        same_address = True
    contact = link.contact
    assert contact is not None
    prefill = contact if same_address else None
    nonce = link.payload.get("s")
    if not isinstance(nonce, str):
        return bad_link(request, "invalid")
    if not ip_allowed(request):
        return too_many(request)
    signup = signup_for_token(contact, nonce)
    if signup is not None and signup.confirmed_at is not None:
        return _confirm_result(request, signup, "preferences/confirm_already.html")
    if signup is None or not contact.email:
        return _confirm_expired(request, token, None, prefill=prefill)
    try:
        signup_resend(
            contact=contact,
            signup=signup,
            form_address=links.absolute(reverse("subscribe")),
            ip_address=client_ip(request),
            user_agent=user_agent(request),
        )
    except ValidationError:
        # A topic was closed since: the person chooses again on the form.
        return _confirm_expired(request, token, None, prefill=prefill)
    return redirect("subscribe_done")
