"""What every page may trust about a request: where it came from, and that it can be read.

``client_ip`` and ``user_agent`` are the evidence recorded beside each fact (preference pages,
sign-up, the links we email); there is one of each so that every page records the same thing.

``UnreadableRequestMiddleware`` answers a clear 400 to a request no page can use: a form body in
another charset than UTF-8, or a NUL character in the path, the query string, a form value or a
cookie. PostgreSQL refuses NUL in text, so a NUL that reached a query or a write would be a 500;
checking once here covers every view, the admin's filters and Django's own forms alike.
"""

from __future__ import annotations

import codecs
import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.utils import translation

USER_AGENT_MAX = 1000
# Form bodies are read as UTF-8 (what browsers send for our UTF-8 pages); ASCII is a subset.
READABLE_CHARSETS = {"utf-8", "ascii"}
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The client's address. Behind ``NUM_PROXIES`` trusted proxies, each appending the address
    it saw to ``X-Forwarded-For``, it is the ``NUM_PROXIES``-th from the right (what the client
    wrote further left is not to be trusted); with fewer entries, the peer itself. Only a
    well-formed address is returned: a malformed header must not reach the evidence column."""
    proxies = settings.NUM_PROXIES
    if proxies > 0:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [a for a in forwarded if a]
        if len(forwarded) >= proxies:
            return _valid_ip(forwarded[-proxies])
    return _valid_ip(request.META.get("REMOTE_ADDR") or "")


def user_agent(request: HttpRequest) -> str:
    """The browser's own description, without NUL (PostgreSQL refuses it), cut to a length."""
    return request.META.get("HTTP_USER_AGENT", "").replace("\x00", "")[:USER_AGENT_MAX]


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


def json_file(data: dict[str, Any], filename: str) -> JsonResponse:
    """An export as a downloaded file: indented, accents kept as they are (the admin's proof and
    access exports, the person's own data from their page)."""
    response = JsonResponse(data, json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
