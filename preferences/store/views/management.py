"""What store managers do on their own screens: enrol and revoke tablets, manage the staff
accounts of their stores; and every staff member's own password."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST

from consents.models import Store
from preferences.models import Device

# Aliased: the views of this module are called ``devices`` and ``staff`` (the URL names' views).
from preferences.store import devices as tablets
from preferences.store import staff as accounts
from preferences.store.forms import (
    DeviceEnrolForm,
    OwnPasswordForm,
    StaffCreateForm,
    StaffPasswordForm,
    StaffStoreForm,
)
from preferences.store.views.access import (
    CAPTURE,
    MANAGE_DEVICES,
    MANAGE_STAFF,
    SESSION_STORE,
    request_device,
    service_errors,
    staff_view,
)

# --- Tablets ------------------------------------------------------------------------------------


@staff_view(MANAGE_DEVICES)
@require_http_methods(["GET", "HEAD", "POST"])
def devices(request: HttpRequest) -> HttpResponse:
    stores = tablets.stores_of(request.user)
    form = DeviceEnrolForm(request.POST or None, stores=stores)
    if request.method == "POST" and form.is_valid():
        chosen = form.chosen_store()
        try:
            device = tablets.device_enrol(
                store=chosen, name=form.cleaned_data["name"], enrolled_by=request.user
            )
        except ValidationError as exc:
            service_errors(form, exc)
        else:
            request.session[SESSION_STORE] = chosen.pk
            messages.success(
                request,
                _("This browser is now the tablet “%(name)s” of %(store)s: it can record consent.")
                % {"name": device.name, "store": chosen.name},
            )
            response = redirect("store_devices")
            response.set_cookie(
                tablets.DEVICE_COOKIE,
                tablets.device_cookie_value(device),
                max_age=tablets.DEVICE_COOKIE_MAX_AGE,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
            return response
    context = {
        "form": form,
        "devices": Device.objects.filter(store__in=stores).select_related("store", "enrolled_by"),
        "this_device": request_device(request),
    }
    return render(request, "store/devices.html", context)


@staff_view(MANAGE_DEVICES)
@require_POST
def device_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    device = get_object_or_404(Device, pk=pk, store__in=tablets.stores_of(request.user))
    this = request_device(request)
    tablets.device_revoke(device=device)
    response = redirect("store_devices")
    if this is not None and this.pk == device.pk:
        response.delete_cookie(tablets.DEVICE_COOKIE)
    return response


# --- Staff accounts -------------------------------------------------------------------------------


def _staff_page(
    request: HttpRequest,
    *,
    form: StaffCreateForm | None = None,
    problems: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    stores = tablets.stores_of(request.user)
    form = form or StaffCreateForm(stores=stores)
    form.describe_errors()
    context = {
        "form": form,
        "rows": accounts.staff_rows(request.user),
        "problems": problems or [],
    }
    return render(request, "store/staff.html", context, status=status)


@staff_view(MANAGE_STAFF)
@require_http_methods(["GET", "HEAD", "POST"])
def staff(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _staff_page(request)
    form = StaffCreateForm(request.POST, stores=tablets.stores_of(request.user))
    if form.is_valid():
        data = form.cleaned_data
        try:
            user = accounts.staff_create(
                manager=request.user,
                store=form.chosen_store(),
                username=data["username"],
                password=data["password1"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                email=data["email"],
            )
        except ValidationError as exc:
            service_errors(form, exc)
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
    member = get_object_or_404(accounts.manageable_staff(request.user), pk=pk)
    chosen: Store | None = None
    if needs_store:
        form = StaffStoreForm(request.POST, stores=tablets.stores_of(request.user))
        if not form.is_valid():
            return _staff_page(request, problems=[str(CHOOSE_STORE)], status=400)
        chosen = form.chosen_store()
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
        accounts.staff_store_add(manager=request.user, user=member, store=chosen)

    done = str(_("“%(username)s” was added to the store."))
    return _staff_action(request, pk, act, done, needs_store=True)


@staff_view(MANAGE_STAFF)
@require_POST
def staff_store_remove(request: HttpRequest, pk: int) -> HttpResponse:
    def act(member: Any, chosen: Store | None) -> None:
        assert chosen is not None
        accounts.staff_store_remove(manager=request.user, user=member, store=chosen)

    done = str(_("“%(username)s” was removed from the store."))
    return _staff_action(request, pk, act, done, needs_store=True)


@staff_view(MANAGE_STAFF)
@require_POST
def staff_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    def act(member: Any, chosen: Store | None) -> None:
        accounts.staff_set_active(manager=request.user, user=member, active=False)

    done = str(_("“%(username)s” can no longer log in: the account is deactivated."))
    return _staff_action(request, pk, act, done)


@staff_view(MANAGE_STAFF)
@require_POST
def staff_reactivate(request: HttpRequest, pk: int) -> HttpResponse:
    def act(member: Any, chosen: Store | None) -> None:
        accounts.staff_set_active(manager=request.user, user=member, active=True)

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
    member = get_object_or_404(accounts.manageable_staff(request.user), pk=pk)
    form = StaffPasswordForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            accounts.staff_password_set(
                manager=request.user, user=member, password=form.cleaned_data["password1"]
            )
        except ValidationError as exc:
            service_errors(form, exc)
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
    if form.is_valid() and not accounts.password_change_allowed(request.user):
        form.add_error(None, TOO_MANY_PASSWORD_ATTEMPTS)
        status = 429
    elif form.is_valid():
        data = form.cleaned_data
        try:
            user = accounts.staff_password_change(
                user=request.user, old_password=data["old_password"], password=data["password1"]
            )
        except ValidationError as exc:
            service_errors(form, exc)
        else:
            update_session_auth_hash(request, user)
            messages.success(request, _("Your password was changed."))
            return redirect("store_home")
    return _password_page(request, form, {"action": reverse("store_password")}, status=status)
