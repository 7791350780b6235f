"""What runs around every page: refusing what no page can read, and the response headers that
Django does not set itself.

``UnreadableRequestMiddleware`` answers a clear 400 to a request no page can use: a form body in
another charset than UTF-8, or a NUL character in the path, the query string, a form value or a
cookie. PostgreSQL refuses NUL in text, so a NUL that reached a query or a write would be a 500;
checking once here covers every view, the admin's filters and Django's own forms alike.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable

from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.utils import translation

# Form bodies are read as UTF-8 (what browsers send for our UTF-8 pages); ASCII is a subset.
READABLE_CHARSETS = {"utf-8", "ascii"}
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

# No inline script or style anywhere: every script and stylesheet is a file under /static/, so
# markup injected into a page (a name, an address, a notice text) can never run or restyle it.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors {ancestors}"
)


def policy(*, frame_ancestors: str = "'none'") -> str:
    return POLICY.format(ancestors=frame_ancestors)


class ContentSecurityPolicyMiddleware:
    """``Content-Security-Policy`` on every response.

    A view that must be framed by other sites (the embeddable sign-up form) sets
    ``response.csp_frame_ancestors``; a view that needs a policy of its own (the development mail
    viewer) sets the header itself and it is kept as it is.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            ancestors = getattr(response, "csp_frame_ancestors", None) or "'none'"
            response["Content-Security-Policy"] = policy(frame_ancestors=ancestors)
        return response


# --- Requests no page can read --------------------------------------------------------------------


def _has_nul(values: Iterable[str]) -> bool:
    return any("\x00" in value for value in values)


def _pairs(data: object) -> Iterable[str]:
    """Every key and value of a QueryDict (or any MultiValueDict) of strings."""
    for key, values in data.lists():  # type: ignore[attr-defined]
        yield key
        yield from (v for v in values if isinstance(v, str))


def _charset_readable(request: HttpRequest) -> bool:
    charset = request.content_params.get("charset") if request.content_params else None
    if charset is None:
        return True
    try:
        return codecs.lookup(charset).name in READABLE_CHARSETS
    except LookupError:
        return False


def unreadable(request: HttpRequest) -> bool:
    """True when the request carries something no page of ours can read or store."""
    if "\x00" in request.path_info:
        return True
    if _has_nul(request.COOKIES.keys()) or _has_nul(request.COOKIES.values()):
        return True
    if _has_nul(_pairs(request.GET)):
        return True
    if request.content_type in FORM_TYPES:
        if not _charset_readable(request):
            return True
        # Only a POST body is parsed into ``request.POST``; the views read nothing else.
        if request.method == "POST" and _has_nul(_pairs(request.POST)):
            return True
    return False


def bad_request_page(request: HttpRequest) -> HttpResponse:
    if request.path_info.startswith("/api/"):
        from api.problems import response

        return response("malformed-body", "The request cannot be read.", request=request)
    # Runs before the locale middleware: the page's language is chosen here, the same way.
    language = translation.get_language_from_request(request)
    with translation.override(language):
        return render(request, "bad_request.html", status=400)


class UnreadableRequestMiddleware:
    """Refuse, with a clear page, what no view can read (see the module's docstring).

    Placed before the session and CSRF middleware: both read cookies and the form body.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            refused = unreadable(request)
        except (BadRequest, SuspiciousOperation, MultiPartParserError):
            # Too many fields, a body too large, a broken multipart body: not a page's problem.
            refused = True
        if refused:
            return bad_request_page(request)
        return self.get_response(request)
