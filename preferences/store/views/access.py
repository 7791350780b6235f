"""The store tablet and the phone capture, under /store/.

Staff log in with Django auth. On top of Django's session expiry, a staff-side idle timeout
(``STAFF_SESSION_IDLE_TIMEOUT``, 15 minutes) is checked on every request here: a tablet left
alone logs itself out. Automatic requests (the customer screen's idle reset, the thank-you
screen's advance) carry ``?auto=1`` and do not count as activity.

Every page here is ``Cache-Control: no-store`` and every form ``autocomplete="off"``: nothing of one
customer may be shown to the next, by the cache, the back button or autofill.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import LoginView, redirect_to_login
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from consents.models import Store, Topic
from preferences.logins import LOGIN_THROTTLED
from preferences.models import Device
from preferences.store import devices
from preferences.store.forms import new_key

CAPTURE = "preferences.capture_consent"
MANAGE_DEVICES = "preferences.manage_devices"
MANAGE_STAFF = "preferences.manage_staff"
SESSION_LAST_SEEN = "store_last_seen"
SESSION_STORE = "store_pk"
# What the thank-you screen (and the phone's done screen) reads back once: topics and channels,
# never an address or a name.
SESSION_THANKS = "store_thanks"
SESSION_PHONE_DONE = "store_phone_done"

View = Callable[..., HttpResponse]
LANGUAGES = ("fr", "en")

KEY_REUSED = _(
    "This form was already sent for another customer. Nothing was recorded for this one: check "
    "the details and send again."
)


def idle_timeout() -> timedelta:
    return settings.STAFF_SESSION_IDLE_TIMEOUT


def customer_idle_seconds() -> int:
    return settings.STORE_CUSTOMER_IDLE_SECONDS


def thanks_seconds() -> int:
    return settings.STORE_THANKS_SECONDS


def page_language(request: HttpRequest) -> str:
    language = (translation.get_language() or "fr")[:2]
    return language if language in LANGUAGES else "fr"


def chosen_language(request: HttpRequest, language: Any) -> str:
    """``language`` when it is one of ours (posted, or kept in the session), else the page's."""
    return language if language in LANGUAGES else page_language(request)


def form_language(request: HttpRequest) -> tuple[str, str]:
    """A capture form's language: the one posted with it, else the page's, unless its "switch
    language" button asks for the other; and that button's language ("" when not pressed)."""
    language = chosen_language(request, request.POST.get("language", ""))
    switch = request.POST.get("switch_language", "")
    if switch not in LANGUAGES:
        return language, ""
    return switch, switch


def _session_expired(request: HttpRequest) -> HttpResponse:
    """A capture posted after the staff session ended: refused, clearly, and shown nowhere."""
    with translation.override(chosen_language(request, request.POST.get("language", ""))):
        return render(request, "store/session_expired.html", status=401)


def staff_view(permission: str) -> Callable[[View], View]:
    """Logged in, not idle for longer than the staff timeout, and holding ``permission``."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            user = request.user
            now = time.time()
            if user.is_authenticated:
                last_seen = request.session.get(SESSION_LAST_SEEN)
                # Absent when the login happened elsewhere (the admin): it starts now.
                if (
                    isinstance(last_seen, int | float)
                    and now - last_seen > idle_timeout().total_seconds()
                ):
                    logout(request)
            if not request.user.is_authenticated:
                if request.method == "POST":
                    return _session_expired(request)
                return redirect_to_login(request.get_full_path(), reverse("store_login"))
            if not request.user.has_perm(permission):
                raise PermissionDenied
            if request.GET.get("auto") != "1":
                request.session[SESSION_LAST_SEEN] = now
            return view(request, *args, **kwargs)

        return never_cache(wrapped)

    return decorator


class StaffLoginView(LoginView):
    template_name = "store/login.html"
    redirect_authenticated_user = False

    def get_default_redirect_url(self) -> str:
        return reverse("store_home")

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        self.request.session[SESSION_LAST_SEEN] = time.time()
        return response

    def form_invalid(self, form: Any) -> HttpResponse:
        # Too many attempts (preferences.logins): said as such, and a 429.
        throttled = form.has_error(NON_FIELD_ERRORS, LOGIN_THROTTLED)
        context = self.get_context_data(form=form, throttled=throttled)
        response = self.render_to_response(context, status=429 if throttled else 200)
        if throttled:
            response["Retry-After"] = str(int(settings.LOGIN_THROTTLE_WINDOW.total_seconds()))
        return response


store_login = never_cache(StaffLoginView.as_view())


@require_POST
def store_logout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("store_login")


# --- Helpers ------------------------------------------------------------------------------------


def current_store(request: HttpRequest) -> Store | None:
    stores = devices.stores_of(request.user)
    chosen = request.session.get(SESSION_STORE)
    for candidate in stores:
        if candidate.pk == chosen:
            return candidate
    return stores[0] if len(stores) == 1 else None


def request_device(request: HttpRequest) -> Device | None:
    return devices.device_from_cookie(request.COOKIES.get(devices.DEVICE_COOKIE))


def service_errors(form: Any, exc: ValidationError) -> None:
    fields = exc.message_dict if hasattr(exc, "error_dict") else {}
    named = {"email": "email", "phone": "phone", "choices": "choice"}
    named.update({"purchase_category": "purchase_category", "call_reference": "call_reference"})
    named.update({"username": "username", "password": "password1", "first_name": "first_name"})
    named.update({"last_name": "last_name", "store": "store", "old_password": "old_password"})
    for key, errors in fields.items():
        field = named.get(key)
        if field in form.fields:
            form.add_error(field, errors)
        else:
            form.add_error(None, errors)
    if not fields:
        form.add_error(None, exc.messages)


def too_many(request: HttpRequest) -> HttpResponse:
    """Too many captures from this tablet or this agent within the hour: nothing recorded."""
    response = render(request, "store/too_many.html", status=429)
    response["Retry-After"] = "600"
    return response


def key_reused(form: Any) -> None:
    """Say so, and give the form shown again a key of its own: sending it records it."""
    form.add_error(None, KEY_REUSED)
    data = form.data.copy()
    data["key"] = new_key()
    form.data = data


def chosen_rows(pairs: list[Any]) -> list[dict[str, Any]]:
    """(topic slug, channel) pairs as the topic (named in the active language) and its channels."""
    topics = {t.slug: t for t in Topic.objects.filter(slug__in=[p[0] for p in pairs])}
    rows: dict[str, dict[str, Any]] = {}
    for slug, channel in pairs:
        if slug in topics:
            row = rows.setdefault(slug, {"topic": topics[slug], "channels": []})
            row["channels"].append(channel)
    return list(rows.values())
