"""Every error of the API as RFC 9457 ``application/problem+json``.

Each kind of error has a stable ``type`` (``/api/v1/problems/<slug>``, a page that describes it),
a ``title`` that does not change with the occurrence, a ``detail`` that does, and, when a field of
the request is at fault, ``field`` (dotted path) and ``errors`` (every field at fault, each with
its JSON pointer into the request body or the name of the query parameter).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.response import Response

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "/api/v1/problems/"

# slug: (status, title, what it means)
PROBLEMS: dict[str, tuple[int, str, str]] = {
    "validation-error": (
        400,
        "The request is not valid",
        "A field is missing, of the wrong type or out of range; `errors` names each one.",
    ),
    "malformed-body": (
        400,
        "The body cannot be read",
        "The body is not valid JSON (or not in UTF-8, or holds NUL characters).",
    ),
    "unauthenticated": (
        401,
        "A valid API key is required",
        "Send `Authorization: Bearer <key>`. The key is missing, unknown or revoked.",
    ),
    "scope-missing": (
        403,
        "The key lacks the scope this needs",
        "Ask an administrator for a key with the scope named in `detail`.",
    ),
    "network-not-allowed": (
        403,
        "The key cannot be used from this address",
        "The key is limited to networks that do not include the caller's address.",
    ),
    "not-found": (404, "Not found", "No such resource, or no such contact."),
    "method-not-allowed": (405, "Method not allowed", "This URL does not accept this method."),
    "not-acceptable": (
        406,
        "No representation for that Accept header",
        "Ask for application/json (or, for audiences, application/x-ndjson or text/csv).",
    ),
    "idempotency-conflict": (
        409,
        "The same Idempotency-Key is in progress",
        "A request with this key is still being processed: retry once it has finished.",
    ),
    "payload-too-large": (413, "The body is too large", "Send fewer items or a smaller file."),
    "unsupported-media-type": (
        415,
        "Unsupported content type",
        "Send application/json (multipart/form-data for imports).",
    ),
    "unprocessable": (
        422,
        "The request cannot be carried out",
        "It is well formed, but the ledger refused it; `errors` names the field at fault.",
    ),
    "idempotency-key-reused": (
        422,
        "The Idempotency-Key was used with another body",
        "A key names one request: use a new key for a different request.",
    ),
    "contact-erased": (
        422,
        "The contact is erased",
        "Nothing can be recorded about or sent to an erased contact.",
    ),
    "rate-limited": (
        429,
        "Too many requests",
        "The key's rate limit is reached; wait the number of seconds in `Retry-After`.",
    ),
    "server-error": (500, "Server error", "Something failed on our side; it is logged."),
    "unavailable": (
        503,
        "Service unavailable",
        "The database cannot be reached; retry after `Retry-After` seconds.",
    ),
}


class Problem(exceptions.APIException):
    """An error with its own problem type, and optionally the field at fault."""

    def __init__(self, slug: str, detail: str = "", *, field: str = "") -> None:
        status, title, _ = PROBLEMS[slug]
        self.slug, self.status_code, self.field = slug, status, field
        super().__init__(detail or title, code=slug)


def type_uri(slug: str) -> str:
    return f"{TYPE_BASE}{slug}"


def pointer(path: str) -> str:
    return "#/" + path.replace(".", "/") if path else "#"


def flatten(detail: Any, path: str = "") -> list[dict[str, str]]:
    """DRF's nested error detail as a flat list of ``{field, pointer, detail, code}``."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            name = str(key)
            if name in ("non_field_errors", "__all__"):
                name = ""
            out += flatten(value, f"{path}.{name}".strip(".") if name else path)
        return out
    if isinstance(detail, list):
        if detail and all(isinstance(d, str) for d in detail):
            return [_item(path, d) for d in detail]
        out = []
        for i, value in enumerate(detail):
            if value in ({}, [], None):
                continue
            child = f"{path}.{i}".strip(".") if not isinstance(value, str) else path
            out += flatten(value, child)
        return out
    return [_item(path, detail)]


def _item(path: str, detail: Any) -> dict[str, str]:
    return {
        "field": path,
        "pointer": pointer(path),
        "detail": str(detail),
        "code": str(getattr(detail, "code", "invalid")),
    }


def body(
    slug: str, detail: str, *, instance: str = "", errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    status, title, _ = PROBLEMS[slug]
    data: dict[str, Any] = {
        "type": type_uri(slug),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        data["instance"] = instance
    if errors:
        data["field"] = errors[0]["field"]
        data["errors"] = errors
    return data


def response(slug: str, detail: str = "", *, request: HttpRequest | None = None, **kw: Any) -> Any:
    """A problem as a plain Django response (for code outside DRF's views)."""
    data = body(slug, detail or PROBLEMS[slug][1], instance=request.path if request else "", **kw)
    return JsonResponse(data, status=data["status"], content_type=CONTENT_TYPE)


SLUG_OF: list[tuple[type[Exception], str]] = [
    (exceptions.ParseError, "malformed-body"),
    (exceptions.AuthenticationFailed, "unauthenticated"),
    (exceptions.NotAuthenticated, "unauthenticated"),
    (exceptions.PermissionDenied, "scope-missing"),
    (exceptions.NotFound, "not-found"),
    (exceptions.MethodNotAllowed, "method-not-allowed"),
    (exceptions.NotAcceptable, "not-acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported-media-type"),
    (exceptions.Throttled, "rate-limited"),
    (exceptions.ValidationError, "validation-error"),
]


def _django_errors(exc: DjangoValidationError) -> list[dict[str, str]]:
    if hasattr(exc, "error_dict"):
        return [
            _item("" if k == "__all__" else k, m)
            for k, msgs in exc.message_dict.items()
            for m in msgs
        ]
    return [_item("", m) for m in exc.messages]


def item_body(exc: Exception) -> dict[str, Any]:
    """The problem of one refused item of a batch, as JSON: the batch itself answers 200, with a
    problem beside each item it refused (a ``Problem``, a DRF or a Django validation error)."""
    if isinstance(exc, Problem):
        errors = [_item(exc.field, str(exc.detail))] if exc.field else None
        return body(exc.slug, str(exc.detail), errors=errors)
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten(exc.detail)
        return body("validation-error", errors[0]["detail"] if errors else "", errors=errors)
    errors = _django_errors(exc)  # type: ignore[arg-type]
    return body("unprocessable", errors[0]["detail"] if errors else "", errors=errors)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's ``EXCEPTION_HANDLER``: every error is a problem; nothing escapes as an HTML page."""
    request = context.get("request")
    instance = request.path if request is not None else ""
    headers: dict[str, str] = {}
    errors = None
    if isinstance(exc, RequestDataTooBig):
        exc = Problem("payload-too-large", "The body is larger than this server accepts.")
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, Problem):
        slug, detail = exc.slug, str(exc.detail)
        if exc.field:
            errors = [_item(exc.field, detail)]
    elif isinstance(exc, DjangoValidationError):
        errors = _django_errors(exc)
        slug, detail = "unprocessable", errors[0]["detail"] if errors else ""
    elif isinstance(exc, OperationalError | InterfaceError):
        logger.warning("database unreachable during an API request", exc_info=exc)
        slug, detail = "unavailable", PROBLEMS["unavailable"][1]
        headers["Retry-After"] = "120"
    elif isinstance(exc, exceptions.APIException):
        slug = next((s for cls, s in SLUG_OF if isinstance(exc, cls)), "validation-error")
        if isinstance(exc, exceptions.ValidationError):
            errors = flatten(exc.detail)
            detail = "; ".join(
                f"{e['field']}: {e['detail']}" if e["field"] else e["detail"] for e in errors[:5]
            )
        else:
            detail = str(exc.detail)
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(max(1, int(exc.wait)))
        if exc.status_code == 403 and getattr(exc, "slug", None):
            slug = exc.slug
    else:
        logger.exception("API request failed", exc_info=exc)
        slug, detail = "server-error", PROBLEMS["server-error"][1]
    data = body(slug, detail, instance=instance, errors=errors)
    return Response(data, status=data["status"], headers=headers, content_type=CONTENT_TYPE)


@csrf_exempt  # a key, not a cookie, authenticates API calls: a POST here is a 404 too
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    return response("not-found", "No such URL in the API.", request=request)
