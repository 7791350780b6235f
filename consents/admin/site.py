"""The admin site: Django's, with a TOTP second factor for every account; and its app config.

A password alone opens nothing: ``has_permission`` also wants a session verified by django-otp.
After the password, the login page sends the user to enrol a device (first login: QR code and
recovery codes) or to type a code. Only the embedded default (``DEBUG`` on) may skip it, for its
demo accounts, with ``ADMIN_REQUIRE_2FA=False``.

Like the store's staff sessions, an admin session left alone for ``ADMIN_SESSION_IDLE_TIMEOUT``
is logged out: the next request goes back to the login page.
"""

from __future__ import annotations

import time
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.contrib.auth import logout
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _


def second_factor_required() -> bool:
    return bool(settings.ADMIN_REQUIRE_2FA) or not settings.DEBUG


def is_verified(request: HttpRequest) -> bool:
    check = getattr(request.user, "is_verified", None)
    return bool(check and check())


SESSION_LAST_SEEN = "admin_last_seen"


def idle_session_ended(request: HttpRequest) -> bool:
    """Log out a session idle for longer than the admin timeout (True); otherwise note this
    request as its latest activity. A session without the mark (a login from the store's page)
    starts counting now. Accounts without admin access (store staff) have no admin session to
    time out: their store session has its own timeout."""
    if not (request.user.is_authenticated and request.user.is_staff):
        return False
    now = time.time()
    last_seen = request.session.get(SESSION_LAST_SEEN)
    timeout = settings.ADMIN_SESSION_IDLE_TIMEOUT.total_seconds()
    if isinstance(last_seen, int | float) and now - last_seen > timeout:
        logout(request)
        return True
    request.session[SESSION_LAST_SEEN] = now
    return False


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
            idle_session_ended(request)  # logged out: the admin's own check sends to the login
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
        response = super().login(request, extra_context)
        if request.method == "POST" and response.status_code == 200:
            # Too many attempts (the login backend of settings.AUTHENTICATION_BACKENDS refused
            # to check the password): the form says so; the status says it too.
            form = (getattr(response, "context_data", None) or {}).get("form")
            if form is not None and form.has_error(NON_FIELD_ERRORS, "login_throttled"):
                response.status_code = 429
                response["Retry-After"] = str(int(settings.LOGIN_THROTTLE_WINDOW.total_seconds()))
        elif request.method == "POST" and request.user.is_authenticated:
            request.session[SESSION_LAST_SEEN] = time.time()  # a fresh login is activity
        return response

    def get_urls(self) -> list[URLResolver | URLPattern]:
        from consents.admin import dashboards, outbox, twofactor

        def staff(view: Any) -> Any:
            return self.admin_view(view)

        urls = [
            path("otp/", twofactor.verify, {"site": self}, name="otp_verify"),
            path("otp/enrol/", twofactor.enrol, {"site": self}, name="otp_enrol"),
            path(
                "otp/enrol/<str:token>/",
                twofactor.enrol_link,
                {"site": self},
                name="otp_enrol_link",
            ),
            path("dashboard/", staff(dashboards.dashboard), name="dashboard"),
            path(
                "dashboard/<str:chart>.csv", staff(dashboards.dashboard_csv), name="dashboard_csv"
            ),
            path("retention/", staff(dashboards.retention_report), name="retention"),
            path("import/", staff(outbox.import_page), name="consents_import"),
        ]
        return urls + super().get_urls()

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        user = request.user
        context["can_view_dashboard"] = user.is_active and user.has_perm("consents.view_dashboard")
        context["can_run_retention"] = user.is_active and user.has_perm("consents.run_retention")
        context["can_import"] = user.is_active and user.has_perm("consents.add_importrun")
        if user.is_active and user.has_perm("consents.view_webhookendpoint"):
            from consents.admin.outbox import failing_endpoints

            context["failing_webhooks"] = failing_endpoints().count()
        return context


class AssentAdminConfig(AdminConfig):
    """``django.contrib.admin`` with Assent's site: a second factor for every login.

    Named in ``INSTALLED_APPS``, so imported before any model is loaded: ``consents.admin``
    (the package Django's autodiscovery imports) holds no model admin, and the pages register
    here, once every app's admin module has (``staff`` replaces the registered ``User`` admin).
    """

    default_site = "consents.admin.site.AssentAdminSite"

    def ready(self) -> None:
        super().ready()
        from consents.admin import (  # noqa: F401  (each registers its pages)
            contacts,
            ledger,
            notices,
            outbox,
            staff,
        )
