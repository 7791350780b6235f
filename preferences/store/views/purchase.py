"""A purchase made today, recorded on the staff screen (never in customer mode)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods

from preferences.store import keys, services
from preferences.store.forms import (
    StorePurchaseForm,
    new_key,
)
from preferences.store.views.access import (
    CAPTURE,
    current_store,
    key_reused,
    request_device,
    service_errors,
    staff_view,
)


@staff_view(CAPTURE)
@require_http_methods(["GET", "HEAD", "POST"])
def purchase(request: HttpRequest) -> HttpResponse:
    """A purchase made today, recorded by staff before or after customer mode, never inside it."""
    current = current_store(request)
    if current is None:
        return redirect("store_home")
    status = 200
    if request.method == "POST":
        form = StorePurchaseForm(request.POST)
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.store_purchase(
                    key=data["key"],
                    user=request.user,
                    store=current,
                    device=request_device(request),
                    email=data["email"],
                    phone=data["phone"],
                    category=data["purchase_category"],
                )
            except ValidationError as exc:
                service_errors(form, exc)
            except keys.CaptureKeyReused:
                key_reused(form)
                status = 409
            else:
                messages.success(request, _("The purchase was recorded."))
                return redirect("store_purchase")
    else:
        form = StorePurchaseForm(initial={"key": new_key()})
    form.describe_errors()
    context = {"form": form, "current": current}
    return render(request, "store/purchase.html", context, status=status)
