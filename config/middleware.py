"""Site-wide response headers that Django does not set itself."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

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
