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
from django.contrib import messages
from django.contrib.auth import logout, update_session_auth_hash
from django.contrib.auth.views import LoginView, redirect_to_login
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from consents.http import user_agent
from consents.models import Store, Topic
from preferences import store
from preferences.forms import topic_groups
from preferences.logins import LOGIN_THROTTLED
from preferences.models import Device
from preferences.services import signup_topics
from preferences.store_forms import (
    ANSWER_PREFIX,
    DeviceEnrolForm,
    OwnPasswordForm,
    PhoneCaptureForm,
    StaffCreateForm,
    StaffPasswordForm,
    StaffStoreForm,
    StoreCaptureForm,
    StorePurchaseForm,
    new_key,
)

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

KEY_REUSED = _(
    "This form was already sent for another customer. Nothing was recorded for this one: check "
    "the details and send again."
)
CONFIRMATION_REFUSED = _(
    "We could not send a confirmation email to this address right now. Choose “Confirm here”, "
    "or try again later."
)


def idle_timeout() -> timedelta:
    return settings.STAFF_SESSION_IDLE_TIMEOUT


def customer_idle_seconds() -> int:
    return settings.STORE_CUSTOMER_IDLE_SECONDS


def thanks_seconds() -> int:
    return settings.STORE_THANKS_SECONDS


def _language(request: HttpRequest) -> str:
    language = (translation.get_language() or "fr")[:2]
    return language if language in ("fr", "en") else "fr"


def _session_expired(request: HttpRequest) -> HttpResponse:
    """A capture posted after the staff session ended: refused, clearly, and shown nowhere."""
    posted = request.POST.get("language", "")
    with translation.override(posted if posted in ("fr", "en") else _language(request)):
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


def _current_store(request: HttpRequest) -> Store | None:
    stores = store.stores_of(request.user)
    chosen = request.session.get(SESSION_STORE)
    for candidate in stores:
        if candidate.pk == chosen:
            return candidate
    return stores[0] if len(stores) == 1 else None


def _device(request: HttpRequest) -> Device | None:
    return store.device_from_cookie(request.COOKIES.get(store.DEVICE_COOKIE))


def _not_enrolled(request: HttpRequest, current: Store) -> HttpResponse:
    return render(request, "store/not_enrolled.html", {"store": current}, status=403)


def _service_errors(form: Any, exc: ValidationError) -> None:
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


# --- Staff screens ------------------------------------------------------------------------------


@staff_view(CAPTURE)
@require_http_methods(["GET", "HEAD", "POST"])
def store_home(request: HttpRequest) -> HttpResponse:
    stores = store.stores_of(request.user)
    if request.method == "POST":
        wanted = request.POST.get("store", "")
        chosen = next((s for s in stores if str(s.pk) == wanted), None)
        if chosen is None:
            raise PermissionDenied  # a store this account does not belong to
        request.session[SESSION_STORE] = chosen.pk
        return redirect("store_home")
    current = _current_store(request)
    device = _device(request)
    context = {
        "stores": stores,
        "current": current,
        "device": device,
        "device_ok": device is not None and current is not None and device.store_id == current.pk,
        "can_manage": request.user.has_perm(MANAGE_DEVICES),
        "can_manage_staff": request.user.has_perm(MANAGE_STAFF),
    }
    return render(request, "store/home.html", context)


@staff_view(MANAGE_DEVICES)
@require_http_methods(["GET", "HEAD", "POST"])
def devices(request: HttpRequest) -> HttpResponse:
    stores = store.stores_of(request.user)
    form = DeviceEnrolForm(request.POST or None, stores=stores)
    if request.method == "POST" and form.is_valid():
        chosen = next(s for s in stores if str(s.pk) == form.cleaned_data["store"])
        try:
            device = store.device_enrol(
                store=chosen, name=form.cleaned_data["name"], enrolled_by=request.user
            )
        except ValidationError as exc:
            _service_errors(form, exc)
        else:
            request.session[SESSION_STORE] = chosen.pk
            messages.success(
                request,
                _("This browser is now the tablet “%(name)s” of %(store)s: it can record consent.")
                % {"name": device.name, "store": chosen.name},
            )
            response = redirect("store_devices")
            response.set_cookie(
                store.DEVICE_COOKIE,
                store.device_cookie_value(device),
                max_age=store.DEVICE_COOKIE_MAX_AGE,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
            return response
    context = {
        "form": form,
        "devices": Device.objects.filter(store__in=stores).select_related("store", "enrolled_by"),
        "this_device": _device(request),
    }
    return render(request, "store/devices.html", context)


@staff_view(MANAGE_DEVICES)
@require_POST
def device_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    device = get_object_or_404(Device, pk=pk, store__in=store.stores_of(request.user))
    this = _device(request)
    store.device_revoke(device=device)
    response = redirect("store_devices")
    if this is not None and this.pk == device.pk:
        response.delete_cookie(store.DEVICE_COOKIE)
    return response


# --- Customer mode --------------------------------------------------------------------------------


@staff_view(CAPTURE)
@require_http_methods(["GET", "HEAD", "POST"])
def capture(request: HttpRequest) -> HttpResponse:
    current = _current_store(request)
    if current is None:
        return redirect("store_home")
    device = _device(request)
    if device is None or device.store_id != current.pk:
        return _not_enrolled(request, current)

    posted_language = request.POST.get("language", "")
    language = posted_language if posted_language in ("fr", "en") else _language(request)
    switch = request.POST.get("switch_language", "")
    if switch in ("fr", "en"):
        language = switch
    with translation.override(language):
        groups = topic_groups(signup_topics(), language)
        status = 200
        if request.method == "POST" and switch in ("fr", "en"):
            # The same capture in the other language: what was typed stays, no error yet.
            initial = {name: request.POST.get(name, "") for name in ("email", "phone", "key")}
            initial.update(first_name=request.POST.get("first_name", ""), language=language)
            form = StoreCaptureForm(initial=initial, groups=groups)
            ticked = {v for v in request.POST.getlist("choice") if v in form.offered}
        elif request.method == "POST":
            form = StoreCaptureForm(request.POST, groups=groups)
            ticked = form.ticked()
            status = 400
            if form.is_valid():
                response = _capture_submit(request, form, current, device, language)
                if isinstance(response, HttpResponse):
                    return response
                status = response
        else:
            form = StoreCaptureForm(initial={"key": new_key(), "language": language}, groups=groups)
            ticked = set()
        if form.is_bound:
            form.describe_errors()
        context = {
            "form": form,
            "groups": groups,
            "ticked": ticked,
            "language": language,
            "idle_seconds": customer_idle_seconds(),
            "expires_days": settings.DOI_CONFIRM_TTL.days,
        }
        return render(request, "store/capture.html", context, status=status)


def _capture_submit(
    request: HttpRequest, form: StoreCaptureForm, current: Store, device: Device, language: str
) -> HttpResponse | int:
    """The response when the capture went through (or was refused outright), else the status of
    the form shown again, with what was typed and why."""
    data = form.cleaned_data
    if not store.capture_rate_allowed(f"device:{device.pk}"):
        response = render(request, "store/too_many.html", status=429)
        response["Retry-After"] = "600"
        return response
    try:
        store.store_capture(
            key=data["key"],
            user=request.user,
            store=current,
            device=device,
            email=data["email"],
            phone=data["phone"],
            first_name=data["first_name"],
            choices=form.choices,
            confirm=data["confirm"],
            language=language,
            user_agent=user_agent(request),
            notices=form.notices,
        )
    except ValidationError as exc:
        _service_errors(form, exc)
        return 400
    except store.CaptureKeyReused:
        _key_reused(form)
        return 409
    except store.ConfirmationEmailRefused:
        # Nothing was recorded. Say only what the customer needs to choose what to do next.
        form.add_error(None, CONFIRMATION_REFUSED)
        return 429
    # POST/redirect/GET to a screen that holds nothing the customer typed: only what they chose,
    # read back once.
    request.session[SESSION_THANKS] = {
        "language": language,
        "confirm": str(data["confirm"]),
        "choices": [list(pair) for pair in form.choices],
        "receipt": bool(data["email"]),
    }
    return redirect("store_thanks")


def _key_reused(form: Any) -> None:
    """Say so, and give the form shown again a key of its own: sending it records it."""
    form.add_error(None, KEY_REUSED)
    data = form.data.copy()
    data["key"] = new_key()
    form.data = data


def _chosen(pairs: list[Any]) -> list[dict[str, Any]]:
    """(topic slug, channel) pairs as the topic (named in the active language) and its channels."""
    topics = {t.slug: t for t in Topic.objects.filter(slug__in=[p[0] for p in pairs])}
    rows: dict[str, dict[str, Any]] = {}
    for slug, channel in pairs:
        if slug in topics:
            row = rows.setdefault(slug, {"topic": topics[slug], "channels": []})
            row["channels"].append(channel)
    return list(rows.values())


@staff_view(CAPTURE)
def thanks(request: HttpRequest) -> HttpResponse:
    """In the language the customer chose, what was recorded, once: a reload or the back button
    finds only the plain thank-you."""
    summary = request.session.pop(SESSION_THANKS, None) or {}
    language = summary.get("language")
    with translation.override(language if language in ("fr", "en") else _language(request)):
        context = {
            "seconds": thanks_seconds(),
            "confirm": summary.get("confirm", ""),
            "chosen": _chosen(summary.get("choices", [])),
            "receipt": summary.get("receipt", False),
        }
        return render(request, "store/thanks.html", context)


# --- A purchase, on the staff screen -------------------------------------------------------------


@staff_view(CAPTURE)
@require_http_methods(["GET", "HEAD", "POST"])
def purchase(request: HttpRequest) -> HttpResponse:
    """A purchase made today, recorded by staff before or after customer mode, never inside it."""
    current = _current_store(request)
    if current is None:
        return redirect("store_home")
    status = 200
    if request.method == "POST":
        form = StorePurchaseForm(request.POST)
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                store.store_purchase(
                    key=data["key"],
                    user=request.user,
                    store=current,
                    device=_device(request),
                    email=data["email"],
                    phone=data["phone"],
                    category=data["purchase_category"],
                )
            except ValidationError as exc:
                _service_errors(form, exc)
            except store.CaptureKeyReused:
                _key_reused(form)
                status = 409
            else:
                messages.success(request, _("The purchase was recorded."))
                return redirect("store_purchase")
    else:
        form = StorePurchaseForm(initial={"key": new_key()})
    form.describe_errors()
    context = {"form": form, "current": current}
    return render(request, "store/purchase.html", context, status=status)


# --- On the phone ---------------------------------------------------------------------------------


def _script(groups: list[Any], answered: dict[str, str]) -> list[dict[str, Any]]:
    """Each topic's wording to read, and the answer recorded so far on each of its channels."""
    return [
        {
            "topic": group.topic,
            "notice": group.notice,
            "rows": [{"option": o, "answer": answered.get(o.value, "")} for o in group.options],
        }
        for group in groups
    ]


@staff_view(CAPTURE)
@require_http_methods(["GET", "HEAD", "POST"])
def phone(request: HttpRequest) -> HttpResponse:
    posted_language = request.POST.get("language", "")
    language = posted_language if posted_language in ("fr", "en") else _language(request)
    switch = request.POST.get("switch_language", "")
    if switch in ("fr", "en"):
        language = switch
    with translation.override(language):
        groups = topic_groups(signup_topics(), language)
        status = 200
        if request.method == "POST" and switch in ("fr", "en"):
            initial = {
                name: request.POST.get(name, "")
                for name in ("email", "phone", "first_name", "call_reference", "key")
            }
            initial.update(language=language, callback=bool(request.POST.get("callback")))
            form = PhoneCaptureForm(initial=initial, groups=groups)
            answered = {
                value: answer
                for value in form.offered
                if (answer := request.POST.get(ANSWER_PREFIX + value, "")) in ("yes", "no")
            }
        elif request.method == "POST":
            form = PhoneCaptureForm(request.POST, groups=groups)
            answered = form.answered()
            if form.is_valid():
                if not store.capture_rate_allowed(f"user:{request.user.pk}"):
                    response = render(request, "store/too_many.html", status=429)
                    response["Retry-After"] = "600"
                    return response
                data = form.cleaned_data
                try:
                    store.phone_capture(
                        key=data["key"],
                        user=request.user,
                        call_reference=data["call_reference"],
                        email=data["email"],
                        phone=data["phone"],
                        first_name=data["first_name"],
                        answers=form.choices,
                        refusals=form.refusals,
                        callback=data["callback"],
                        automated=data["automated"],
                        language=language,
                        store=_current_store(request),
                        notices=form.notices,
                    )
                except ValidationError as exc:
                    _service_errors(form, exc)
                except store.CaptureKeyReused:
                    _key_reused(form)
                    status = 409
                else:
                    request.session[SESSION_PHONE_DONE] = {
                        "language": language,
                        "yes": [list(pair) for pair in form.choices],
                        "no": [list(pair) for pair in form.refusals],
                        "callback": bool(data["callback"]),
                        "automated": bool(data["automated"]),
                        "call_reference": data["call_reference"],
                    }
                    return redirect("store_phone_done")
            status = 400 if status == 200 else status
        else:
            form = PhoneCaptureForm(initial={"key": new_key(), "language": language}, groups=groups)
            answered = {}
        if form.is_bound:
            form.describe_errors()
        context = {"form": form, "script": _script(groups, answered), "language": language}
        return render(request, "store/phone.html", context, status=status)


@staff_view(CAPTURE)
def phone_done(request: HttpRequest) -> HttpResponse:
    """The answers read back to the caller, once, in the language of the call."""
    summary = request.session.pop(SESSION_PHONE_DONE, None) or {}
    language = summary.get("language")
    with translation.override(language if language in ("fr", "en") else _language(request)):
        context = {
            "yes": _chosen(summary.get("yes", [])),
            "no": _chosen(summary.get("no", [])),
            "callback": summary.get("callback", False),
            "automated": summary.get("automated", False),
            "call_reference": summary.get("call_reference", ""),
        }
        return render(request, "store/phone_done.html", context)


# --- Staff accounts -------------------------------------------------------------------------------


def _staff_page(
    request: HttpRequest,
    *,
    form: StaffCreateForm | None = None,
    problems: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    stores = store.stores_of(request.user)
    form = form or StaffCreateForm(stores=stores)
    form.describe_errors()
    context = {
        "form": form,
        "rows": store.staff_rows(request.user),
        "problems": problems or [],
    }
    return render(request, "store/staff.html", context, status=status)


@staff_view(MANAGE_STAFF)
@require_http_methods(["GET", "HEAD", "POST"])
def staff(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _staff_page(request)
    stores = store.stores_of(request.user)
    form = StaffCreateForm(request.POST, stores=stores)
    if form.is_valid():
        data = form.cleaned_data
        try:
            user = store.staff_create(
                manager=request.user,
                store=next(s for s in stores if str(s.pk) == data["store"]),
                username=data["username"],
                password=data["password1"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                email=data["email"],
            )
        except ValidationError as exc:
            _service_errors(form, exc)
        else:
            messages.success(
                request,
                _("The account “%(username)s” was created.") % {"username": user.get_username()},
            )
            return redirect("store_staff")
    return _staff_page(request, form=form, status=400)


def _staff_action(
    request: HttpRequest,
    pk: int,
    act: Callable[[Any, Store | None], Any],
    done: str,
    *,
    needs_store: bool = False,
) -> HttpResponse:
    """One change to one account of the manager's stores; any other account is a 404."""
    member = get_object_or_404(store.manageable_staff(request.user), pk=pk)
    chosen: Store | None = None
    if needs_store:
        stores = store.stores_of(request.user)
        form = StaffStoreForm(request.POST, stores=stores)
        if not form.is_valid():
            return _staff_page(request, problems=[str(CHOOSE_STORE)], status=400)
        chosen = next(s for s in stores if str(s.pk) == form.cleaned_data["store"])
    try:
        act(member, chosen)
    except ValidationError as exc:
        return _staff_page(request, problems=[str(m) for m in exc.messages], status=400)
    messages.success(request, done % {"username": member.get_username()})
    return redirect("store_staff")


CHOOSE_STORE = _("Choose one of your stores.")


@staff_view(MANAGE_STAFF)
@require_POST
def staff_store_add(request: HttpRequest, pk: int) -> HttpResponse:
    def act(member: Any, chosen: Store | None) -> None:
        assert chosen is not None
        store.staff_store_add(manager=request.user, user=member, store=chosen)

    done = str(_("“%(username)s” was added to the store."))
    return _staff_action(request, pk, act, done, needs_store=True)


@staff_view(MANAGE_STAFF)
@require_POST
def staff_store_remove(request: HttpRequest, pk: int) -> HttpResponse:
    def act(member: Any, chosen: Store | None) -> None:
        assert chosen is not None
        store.staff_store_remove(manager=request.user, user=member, store=chosen)

    done = str(_("“%(username)s” was removed from the store."))
    return _staff_action(request, pk, act, done, needs_store=True)


@staff_view(MANAGE_STAFF)
@require_POST
def staff_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    def act(member: Any, chosen: Store | None) -> None:
        store.staff_set_active(manager=request.user, user=member, active=False)

    done = str(_("“%(username)s” can no longer log in: the account is deactivated."))
    return _staff_action(request, pk, act, done)


@staff_view(MANAGE_STAFF)
@require_POST
def staff_reactivate(request: HttpRequest, pk: int) -> HttpResponse:
    def act(member: Any, chosen: Store | None) -> None:
        store.staff_set_active(manager=request.user, user=member, active=True)

    done = str(_("“%(username)s” can log in again: the account is active."))
    return _staff_action(request, pk, act, done)


def _password_page(
    request: HttpRequest, form: Any, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    form.describe_errors()
    return render(request, "store/password.html", {"form": form, **context}, status=status)


@staff_view(MANAGE_STAFF)
@require_http_methods(["GET", "HEAD", "POST"])
def staff_password(request: HttpRequest, pk: int) -> HttpResponse:
    """A new password for a staff member who forgot theirs; any other account is a 404."""
    member = get_object_or_404(store.manageable_staff(request.user), pk=pk)
    form = StaffPasswordForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            store.staff_password_set(
                manager=request.user, user=member, password=form.cleaned_data["password1"]
            )
        except ValidationError as exc:
            _service_errors(form, exc)
        else:
            done = _("A new password was set for “%(username)s”; they were logged out everywhere.")
            messages.success(request, done % {"username": member.get_username()})
            return redirect("store_staff")
    context = {"member": member, "action": reverse("store_staff_password", args=[member.pk])}
    return _password_page(request, form, context, status=400 if form.is_bound else 200)


TOO_MANY_PASSWORD_ATTEMPTS = _("Too many attempts. Wait 15 minutes, then try again.")


@staff_view(CAPTURE)
@require_http_methods(["GET", "HEAD", "POST"])
def own_password(request: HttpRequest) -> HttpResponse:
    """A staff member's own password. This session stays logged in; the others end."""
    form = OwnPasswordForm(request.POST if request.method == "POST" else None)
    status = 400 if form.is_bound else 200
    if form.is_valid() and not store.password_change_allowed(request.user):
        form.add_error(None, TOO_MANY_PASSWORD_ATTEMPTS)
        status = 429
    elif form.is_valid():
        data = form.cleaned_data
        try:
            user = store.staff_password_change(
                user=request.user, old_password=data["old_password"], password=data["password1"]
            )
        except ValidationError as exc:
            _service_errors(form, exc)
        else:
            update_session_auth_hash(request, user)
            messages.success(request, _("Your password was changed."))
            return redirect("store_home")
    return _password_page(request, form, {"action": reverse("store_password")}, status=status)
