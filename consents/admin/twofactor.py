"""Second factor for the admin: enrol a TOTP device (QR code as SVG), then type its codes.

Recovery codes are django-otp static tokens: ten, shown once at enrolment, each usable once.

Knowing an account's password is never enough to enrol a device, or the second factor would
protect nothing the password does not:

- an account that has any confirmed device (an authenticator, recovery codes) enrols a new one
  only from a session verified with one of them (a lost phone: a recovery code, then the new
  phone; the old authenticator stops working);
- an account with none enrols its first device through a one-time link an administrator made
  for it (the "Create second-factor enrolment links" action on the users, or
  ``manage.py otp_enrol_link USERNAME``), opened in a session logged in with its password. The
  link expires (``ADMIN_ENROL_LINK_TTL``) and works once.
"""

from __future__ import annotations

import hashlib
import secrets
from base64 import b32encode
from typing import Any

import qrcode
import qrcode.image.svg
from django import forms
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET
from django_otp import login as otp_login
from django_otp import match_token, user_has_device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from consents import clock, services
from consents.admin.site import idle_session_ended, is_verified, safe_next
from consents.models import EnrolmentLink

RECOVERY_CODES = 10
# The enrolment link opened in this session (its row's id; the token never enters the session).
SESSION_ENROL_LINK = "otp_enrol_link"


class CodeForm(forms.Form):
    token = forms.CharField(
        label=_("Code"),
        max_length=16,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True}),
    )


def qr_svg(text: str) -> str:
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    return image.to_string(encoding="unicode")


# --- Enrolment links -----------------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def enrolment_link_path(token: str) -> str:
    return reverse("admin:otp_enrol_link", args=[token])


@transaction.atomic
def enrolment_link_create(*, user: Any, created_by: AbstractBaseUser | None) -> str:
    """A one-time link for ``user``'s first second factor; returns its token, shown once.

    Refused for an account without admin access and for one that already has a device (it
    enrols a new one from a verified session). The account's earlier unused links stop working.
    """
    if not (user.is_active and user.is_staff):
        raise ValidationError(
            {"user": _("Only an active account with admin access enrols a second factor.")}
        )
    if user_has_device(user, confirmed=True):
        raise ValidationError(
            {
                "user": _(
                    "This account already has a second factor. It sets up a new one itself, "
                    "after logging in with a code; to start over, delete its devices first."
                )
            }
        )
    now = clock.now()
    EnrolmentLink.objects.filter(user=user, used_at__isnull=True, expires_at__gt=now).update(
        expires_at=now
    )
    token = secrets.token_urlsafe(32)
    link = EnrolmentLink.objects.create(
        user=user,
        token_sha256=_digest(token),
        created_by=created_by,
        created_at=now,
        expires_at=now + settings.ADMIN_ENROL_LINK_TTL,
    )
    services.access_log(
        user=created_by or AnonymousUser(),
        username="" if created_by else "manage.py",
        action="enrolment_link_create",
        contact=None,
        detail=(
            f"second-factor enrolment link for account: {user.get_username()} (#{user.pk}); "
            f"expires: {link.expires_at:%Y-%m-%d %H:%M} UTC"
        ),
    )
    return token


def enrolment_link_read(*, token: str) -> EnrolmentLink | None:
    """The link if it exists, is unused and has not expired."""
    if not token or len(token) > 100:
        return None
    return (
        EnrolmentLink.objects.filter(
            token_sha256=_digest(token), used_at__isnull=True, expires_at__gt=clock.now()
        )
        .select_related("user")
        .first()
    )


def _session_link(request: HttpRequest) -> EnrolmentLink | None:
    """The enrolment link this session opened, if it is still good and for this account."""
    pk = request.session.get(SESSION_ENROL_LINK)
    if not isinstance(pk, int):
        return None
    return EnrolmentLink.objects.filter(
        pk=pk, user=request.user, used_at__isnull=True, expires_at__gt=clock.now()
    ).first()


@transaction.atomic
def device_confirm(*, user: Any, device: TOTPDevice, link: EnrolmentLink | None) -> list[str]:
    """The device works: it becomes the account's authenticator (any earlier one stops working),
    with ten new recovery codes, and the enrolment link is used up. Returns the codes."""
    if link is not None:
        used = EnrolmentLink.objects.filter(pk=link.pk, used_at__isnull=True).update(
            used_at=clock.now()
        )
        if not used:  # the same link, confirmed twice at once in two tabs
            raise ValidationError({"token": _("This enrolment link was already used.")})
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    StaticDevice.objects.filter(user=user).delete()
    recovery = StaticDevice.objects.create(user=user, name="recovery codes")
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=recovery, token=code) for code in codes])
    services.access_log(
        user=user,
        action="second_factor_enrol",
        contact=None,
        detail="with an enrolment link" if link else "from a session verified with a code",
    )
    return codes


# --- Views ---------------------------------------------------------------------------------------


def _staff_or_login(request: HttpRequest) -> HttpResponse | None:
    idle_session_ended(request)
    user = request.user
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return redirect_to_login(request.get_full_path(), reverse("admin:login"))
    return None


@never_cache
@csrf_protect
def verify(request: HttpRequest, site: Any) -> HttpResponse:
    if (refused := _staff_or_login(request)) is not None:
        return refused
    index = reverse("admin:index")
    if is_verified(request):
        return HttpResponseRedirect(safe_next(request, index))
    # Any confirmed device: an account left with only its recovery codes types one of them.
    if not user_has_device(request.user, confirmed=True):
        return HttpResponseRedirect(reverse("admin:otp_enrol"))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = match_token(request.user, form.cleaned_data["token"].replace(" ", ""))
        if device is not None:
            otp_login(request, device)
            return HttpResponseRedirect(safe_next(request, index))
        form.add_error("token", _("This code is not valid. Try the next one, or a recovery code."))
    context = {
        **site.each_context(request),
        "title": _("Second factor"),
        "form": form,
        "next": safe_next(request, ""),
    }
    return render(request, "admin/otp_verify.html", context)


@never_cache
@require_GET
def enrol_link(request: HttpRequest, site: Any, token: str) -> HttpResponse:
    """Opening an enrolment link changes nothing but this session: the link's id moves into it
    and the browser goes on to a URL without the token (history, Referer)."""
    link = enrolment_link_read(token=token)
    if link is None:
        context = {**site.each_context(request), "title": _("This link does not work")}
        return render(request, "admin/otp_enrol_link_invalid.html", context, status=404)
    request.session[SESSION_ENROL_LINK] = link.pk
    return HttpResponseRedirect(reverse("admin:otp_enrol"))


@never_cache
@csrf_protect
def enrol(request: HttpRequest, site: Any) -> HttpResponse:
    """Scan a QR code, type a code to prove it works, write down recovery codes."""
    if (refused := _staff_or_login(request)) is not None:
        return refused
    user = request.user
    link = None
    if not is_verified(request):
        if user_has_device(user, confirmed=True):
            return HttpResponseRedirect(reverse("admin:otp_verify"))
        link = _session_link(request)
        if link is None:
            context = {**site.each_context(request), "title": _("Set up a second factor")}
            return render(request, "admin/otp_enrol_needed.html", context, status=403)
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
    form = CodeForm(request.POST or None)
    context: dict[str, Any] = {**site.each_context(request), "title": _("Set up a second factor")}
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["token"].replace(" ", "")):
            try:
                codes = device_confirm(user=user, device=device, link=link)
            except ValidationError as exc:
                form.add_error(None, exc.messages)
            else:
                request.session.pop(SESSION_ENROL_LINK, None)
                otp_login(request, device)
                context.update({"codes": codes, "title": _("Your recovery codes")})
                return render(request, "admin/otp_recovery_codes.html", context)
        else:
            form.add_error("token", _("This code is not valid. Check your device's clock."))
    context.update(
        {
            "form": form,
            "qr": mark_safe(qr_svg(device.config_url)),  # noqa: S308 - generated by qrcode
            "secret": _base32(device),
        }
    )
    return render(request, "admin/otp_enrol.html", context)


def _base32(device: TOTPDevice) -> str:
    secret = b32encode(device.bin_key).decode()
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
