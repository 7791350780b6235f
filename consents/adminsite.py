"""The admin site: Django's, with a TOTP second factor for every account.

A password alone opens nothing: ``has_permission`` also wants a session verified by django-otp.
After the password, the login page sends the user to enrol a device (first login: QR code and
recovery codes) or to type a code. Only the embedded default (``DEBUG`` on) may skip it, for its
demo accounts, with ``ADMIN_REQUIRE_2FA=False``.
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _


def second_factor_required() -> bool:
    return bool(settings.ADMIN_REQUIRE_2FA) or not settings.DEBUG


def is_verified(request: HttpRequest) -> bool:
    check = getattr(request.user, "is_verified", None)
    return bool(check and check())


def safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if target and allowed else default


class AssentAdminSite(admin.AdminSite):
    site_header = _("Assent: consent ledger")
    site_title = _("Assent admin")
    index_title = _("Compliance")

    def admin_view(self, view: Any, cacheable: bool = False) -> Any:
        """A signed-in account without admin access (store staff) gets a plain 403, not the
        admin's login form: it has nothing to sign in to here."""
        inner = super().admin_view(view, cacheable)

        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            user = request.user
            if user.is_authenticated and not (user.is_active and user.is_staff):
                raise PermissionDenied
            return inner(request, *args, **kwargs)

        return guarded

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        return is_verified(request) or not second_factor_required()

    def password_only(self, request: HttpRequest) -> bool:
        """Signed in with a password, second factor still to give."""
        user = request.user
        return (
            user.is_active
            and user.is_staff
            and second_factor_required()
            and not is_verified(request)
        )

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        if request.method == "GET" and self.password_only(request):
            target = reverse("admin:otp_verify", current_app=self.name)
            nxt = request.GET.get("next")
            return HttpResponseRedirect(f"{target}?next={nxt}" if nxt else target)
        return super().login(request, extra_context)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        from consents import admin_views, twofactor

        def staff(view: Any) -> Any:
            return self.admin_view(view)

        urls = [
            path("otp/", twofactor.verify, {"site": self}, name="otp_verify"),
            path("otp/enrol/", twofactor.enrol, {"site": self}, name="otp_enrol"),
            path("dashboard/", staff(admin_views.dashboard), name="dashboard"),
            path(
                "dashboard/<str:chart>.csv", staff(admin_views.dashboard_csv), name="dashboard_csv"
            ),
            path("retention/", staff(admin_views.retention_report), name="retention"),
        ]
        return urls + super().get_urls()

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        user = request.user
        context["can_view_dashboard"] = user.is_active and user.has_perm("consents.view_dashboard")
        context["can_run_retention"] = user.is_active and user.has_perm("consents.run_retention")
        return context


def redirect_to(request: HttpRequest, name: str) -> HttpResponse:
    return HttpResponseRedirect(reverse(name))
