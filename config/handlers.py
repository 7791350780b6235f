"""One WSGI application, two middleware stacks: the email service's webhooks through the few that
a machine's request needs, everything else through ``settings.MIDDLEWARE``.

A webhook is an email service posting an event (``/webhooks/anymail/``): it carries no session,
no language, no user and no messages, needs no CSRF token (anymail's views are exempt and check
the service's own credentials) and asks for no static file. In a campaign it is the most frequent
request of all, one per message delivered, opened or clicked: the middleware it had no use for
took a quarter of its instructions (bench/README.md, 2 December). Its host is still checked, its
response keeps the security headers and the policy, and a request no page can read still gets
its clear 400.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

MACHINE_PATHS = ("/webhooks/anymail/",)

# Those of ``settings.MIDDLEWARE`` a machine's request goes through, in that list's order.
MACHINE_MIDDLEWARE = frozenset(
    {
        "django.middleware.security.SecurityMiddleware",
        "config.middleware.ContentSecurityPolicyMiddleware",
        "config.middleware.UnreadableRequestMiddleware",
        # The host checked against ALLOWED_HOSTS (400 otherwise), as for every other request.
        "django.middleware.common.CommonMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    }
)


def machine_middleware() -> list[str]:
    return [path for path in settings.MIDDLEWARE if path in MACHINE_MIDDLEWARE]


class MachineHandler(WSGIHandler):
    """Django's WSGI handler over ``machine_middleware()``. Django builds a handler's chain from
    ``settings.MIDDLEWARE``: it is given the shorter list for the time that takes, once, when the
    handler is made (when the WSGI module is loaded, before any request), then put back."""

    def load_middleware(self, is_async: bool = False) -> None:
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = machine_middleware()
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def by_path(people: WSGIApp, machines: WSGIApp) -> WSGIApp:
    """The application: a request under ``MACHINE_PATHS`` to ``machines``, any other to
    ``people``."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        handler = machines if environ.get("PATH_INFO", "").startswith(MACHINE_PATHS) else people
        return handler(environ, start_response)

    return application
