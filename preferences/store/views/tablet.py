"""The tablet: the staff home (which store, is this browser enrolled), then customer mode,
where the customer ticks their choices, and the thank-you screen that reads them back once."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods

from consents.http import user_agent
from consents.models import Store
from preferences.forms import topic_groups
from preferences.models import Device
from preferences.services import signup_topics
from preferences.store import devices, keys, services
from preferences.store.forms import (
    StoreCaptureForm,
    new_key,
)
from preferences.store.views.access import (
    CAPTURE,
    MANAGE_DEVICES,
    MANAGE_STAFF,
    SESSION_STORE,
    SESSION_THANKS,
    chosen_language,
    chosen_rows,
    current_store,
    customer_idle_seconds,
    form_language,
    key_reused,
    request_device,
    service_errors,
    staff_view,
    thanks_seconds,
    too_many,
)

CONFIRMATION_REFUSED = _(
    "We could not send a confirmation email to this address right now. Choose “Confirm here”, "
    "or try again later."
)


@staff_view(CAPTURE)
@require_http_methods(["GET", "HEAD", "POST"])
def store_home(request: HttpRequest) -> HttpResponse:
    stores = devices.stores_of(request.user)
    if request.method == "POST":
        wanted = request.POST.get("store", "")
        chosen = next((s for s in stores if str(s.pk) == wanted), None)
        if chosen is None:
            raise PermissionDenied  # a store this account does not belong to
        request.session[SESSION_STORE] = chosen.pk
        return redirect("store_home")
    current = current_store(request)
    device = request_device(request)
    context = {
        "stores": stores,
        "current": current,
        "device": device,
        "device_ok": device is not None and current is not None and device.store_id == current.pk,
        "can_manage": request.user.has_perm(MANAGE_DEVICES),
        "can_manage_staff": request.user.has_perm(MANAGE_STAFF),
    }
    return render(request, "store/home.html", context)


# --- Customer mode --------------------------------------------------------------------------------


@staff_view(CAPTURE)
@require_http_methods(["GET", "HEAD", "POST"])
def capture(request: HttpRequest) -> HttpResponse:
    current = current_store(request)
    if current is None:
        return redirect("store_home")
    device = request_device(request)
    if device is None or device.store_id != current.pk:
        return render(request, "store/not_enrolled.html", {"store": current}, status=403)

    language, switch = form_language(request)
    with translation.override(language):
        groups = topic_groups(signup_topics(), language)
        status = 200
        if request.method == "POST" and switch:
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
    if not services.capture_rate_allowed(f"device:{device.pk}"):
        return too_many(request)
    try:
        services.store_capture(
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
        service_errors(form, exc)
        return 400
    except keys.CaptureKeyReused:
        key_reused(form)
        return 409
    except services.ConfirmationEmailRefused:
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


@staff_view(CAPTURE)
def thanks(request: HttpRequest) -> HttpResponse:
    """In the language the customer chose, what was recorded, once: a reload or the back button
    finds only the plain thank-you."""
    summary = request.session.pop(SESSION_THANKS, None) or {}
    language = summary.get("language")
    with translation.override(chosen_language(request, language)):
        context = {
            "seconds": thanks_seconds(),
            "confirm": summary.get("confirm", ""),
            "chosen": chosen_rows(summary.get("choices", [])),
            "receipt": summary.get("receipt", False),
        }
        return render(request, "store/thanks.html", context)
