"""What the public pages share: the page's language, the answers to a bad or old link, the
embedded form's framing, the rate limit per address."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation

from consents.http import client_key
from consents.links import LinkError
from preferences import ratelimit
from preferences.forms import LinkRequestForm


def page_language() -> str:
    code = (translation.get_language() or "fr")[:2]
    return code if code in ("fr", "en") else "fr"


def bad_link(request: HttpRequest, reason: str) -> HttpResponse:
    """Tampered, cut or wrong-purpose links (400); links to something that is gone (404)."""
    status = 404 if reason == "unknown" else 400
    return render(request, "bad_link.html", {"reason": reason}, status=status)


def is_embed(request: HttpRequest) -> bool:
    return request.GET.get("embed") == "1"


def framable(response: HttpResponse) -> HttpResponse:
    """Let the sites the operator named show this one response in an iframe; every other page,
    and this one while none is named, cannot be framed (config.middleware writes the policy)."""
    ancestors = settings.EMBED_FRAME_ANCESTORS
    if ancestors != "'none'":
        response.xframe_options_exempt = True  # type: ignore[attr-defined]
    response.csp_frame_ancestors = ancestors  # type: ignore[attr-defined]
    return response


def posted_from_our_page(request: HttpRequest) -> bool:
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


def too_many(request: HttpRequest, *, embed: bool = False) -> HttpResponse:
    response = render(request, "preferences/too_many.html", {"embed": embed}, status=429)
    response["Retry-After"] = "3600"
    return framable(response) if embed else response


def ip_allowed(request: HttpRequest, scope: str = "signup-ip") -> bool:
    """A form that emails someone, posted from this address: within the hourly limit?"""
    return ratelimit.allow(
        scope,
        client_key(request),
        limit=settings.SIGNUP_MAX_PER_IP_PER_HOUR,
        window_seconds=3600,
    )


def link_expired(request: HttpRequest, exc: LinkError, *, kind: str) -> HttpResponse:
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
