"""The 500 and 503 pages: answered when something failed, so nothing here may fail in turn.

The pages (``templates/500.html``, ``templates/503.html``) are plain HTML in French and English,
read once at start-up and never given to the template engine: no context processor, no
translation catalog, no database, no session. Only two placeholders are replaced, with values
that are known at start-up (the brand name and the static files' URL).

A database that cannot be reached (or a connection that broke) is not a bug of the page that
asked: it answers 503 with ``Retry-After``, and the person is told to come back in a moment.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.utils.html import escape

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
RETRY_AFTER_SECONDS = 120
# Shown if the files themselves cannot be read: the last line of defence.
_FALLBACK = (
    '<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>{title}</title></head>'
    "<body><main><h1>{title}</h1><p>Réessayez dans quelques minutes.</p>"
    '<p lang="en">Try again in a few minutes.</p></main></body></html>'
)


def _page(name: str, title: str) -> bytes:
    try:
        text = (TEMPLATES / name).read_text(encoding="utf-8")
        text = text.replace("{{ brand_name }}", escape(settings.BRAND_NAME))
        text = text.replace("{{ static_url }}", escape(settings.STATIC_URL))
    except Exception:  # a broken deployment still answers something readable
        logger.exception("error page %s could not be read", name)
        text = _FALLBACK.format(title=title)
    return text.encode("utf-8")


SERVER_ERROR_PAGE = _page("500.html", "Erreur du serveur · Server error")
UNAVAILABLE_PAGE = _page("503.html", "Service indisponible · Service unavailable")


def database_unreachable(exc: BaseException | None) -> bool:
    """The database is down or the connection broke (Django's wrappers of the driver's errors:
    a refused or dropped connection, SQLite's unreadable file), rather than a query being wrong."""
    return isinstance(exc, OperationalError | InterfaceError)


def unavailable() -> HttpResponse:
    response = HttpResponse(UNAVAILABLE_PAGE, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: Django calls it while handling the exception, so it is still current."""
    try:
        if database_unreachable(sys.exc_info()[1]):
            return unavailable()
    except Exception:  # telling the two apart must never cost the page
        pass
    response = HttpResponse(SERVER_ERROR_PAGE, status=500, content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response
