"""Forms of the store tablet and the phone capture. They check shape; ``store.py`` decides."""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from consents import services
from consents.models import Category
from preferences.forms import NOT_A_NAME, AnyChoiceField, TelInput, TopicGroup
from preferences.store import Confirm

MAX_CHOICES = 100

# No autofill anywhere: a shared tablet must never offer one customer's details to the next.
OFF = {"autocomplete": "off", "autocapitalize": "off", "spellcheck": "false"}


def new_key() -> str:
    return secrets.token_hex(16)


class _CaptureForm(forms.Form):
    key = forms.CharField(max_length=64, widget=forms.HiddenInput)
    language = forms.ChoiceField(
        choices=[("fr", "fr"), ("en", "en")], required=False, widget=forms.HiddenInput
    )
    email = forms.CharField(
        label=_("Email address"),
        max_length=254,
        required=False,
        widget=forms.EmailInput(attrs=OFF),
    )
    phone = forms.CharField(
        label=_("Mobile phone"),
        max_length=32,
        required=False,
        widget=TelInput(attrs=OFF),
    )
    first_name = forms.CharField(
        label=_("First name (optional)"),
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs=OFF),
    )
    choice = AnyChoiceField(label=_("Your choices"), required=False)

    def __init__(self, *args: Any, groups: list[TopicGroup], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.groups = groups
        self.offered = {o.value: o for g in groups for o in g.options}
        self.fields["email"].widget.attrs["aria-describedby"] = "address-hint"

    def describe_errors(self) -> None:
        """Tie each field's error message to its input, for screen readers."""
        for name in self.errors:
            if name not in self.fields or name == "choice":
                continue
            attrs = self.fields[name].widget.attrs
            described = f"{attrs.get('aria-describedby', '')} id_{name}_error".strip()
            attrs.update({"aria-describedby": described, "aria-invalid": "true"})

    def clean_email(self) -> str:
        raw = self.cleaned_data["email"].strip()
        if not raw:
            return ""
        try:
            return services.normalize_email(raw)
        except ValidationError:
            raise ValidationError(_("Enter a valid email address."), code="invalid") from None

    def clean_phone(self) -> str:
        raw = self.cleaned_data["phone"]
        if not raw.strip():
            return ""
        try:
            return services.normalize_phone(raw)
        except ValidationError:
            raise ValidationError(
                _("Enter a phone number such as 06 12 34 56 78 or +33 6 12 34 56 78."),
                code="invalid",
            ) from None

    def clean_first_name(self) -> str:
        value = " ".join(self.cleaned_data["first_name"].split())
        if NOT_A_NAME.search(value):
            raise ValidationError(_("Enter only a first name."), code="invalid")
        return value

    def clean_choice(self) -> list[str]:
        values = list(dict.fromkeys(self.cleaned_data["choice"]))
        if len(values) > MAX_CHOICES or any(v not in self.offered for v in values):
            raise ValidationError(_("This choice is not offered."), code="invalid_choice")
        return values

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        addresses = (cleaned.get("email"), cleaned.get("phone"))
        if "email" in cleaned and "phone" in cleaned and not any(addresses):
            self.add_error("email", _("Enter an email address or a phone number."))
        values = cleaned.get("choice")
        if (
            values
            and "phone" in cleaned
            and not cleaned["phone"]
            and any(self.offered[v].needs_phone for v in values)
        ):
            self.add_error("phone", _("Enter a phone number for text messages or calls."))
        return cleaned

    @property
    def choices(self) -> list[tuple[str, str]]:
        pairs = []
        for value in self.cleaned_data.get("choice", []):
            slug, _sep, channel = value.partition(":")
            pairs.append((slug, channel))
        return pairs

    def ticked(self) -> set[str]:
        return (
            {v for v in self.data.getlist("choice") if v in self.offered}
            if self.is_bound
            else set()
        )


class StoreCaptureForm(_CaptureForm):
    confirm = forms.ChoiceField(
        choices=[(c.value, c.value) for c in Confirm], required=False, widget=forms.HiddenInput
    )
    purchase = forms.BooleanField(label=_("Purchase made today"), required=False)
    purchase_category = forms.ChoiceField(label=_("Product category"), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["purchase_category"].choices = [("", "—")] + [
            (c.slug, c.name or c.slug) for c in Category.objects.order_by("name", "slug")
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "choice" in cleaned and not cleaned["choice"]:
            self.add_error("choice", _("Choose at least one topic and how to receive it."))
        confirm = cleaned.get("confirm")
        if not confirm:
            self.add_error(None, _("Choose how to confirm."))
        elif confirm == Confirm.EMAIL and not cleaned.get("email") and cleaned.get("phone"):
            self.add_error("email", _("Enter an email address to confirm by email."))
        if cleaned.get("purchase") and not cleaned.get("purchase_category"):
            self.add_error("purchase_category", _("Choose the category of the purchase."))
        return cleaned


class PhoneCaptureForm(_CaptureForm):
    call_reference = forms.CharField(
        label=_("Call reference"),
        max_length=200,
        widget=forms.TextInput(attrs=OFF),
    )
    callback = forms.BooleanField(label=_("The caller asks to be called back"), required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("callback") and "phone" in cleaned and not cleaned["phone"]:
            self.add_error("phone", _("Enter the phone number to call back."))
        if "choice" in cleaned and not cleaned["choice"] and not cleaned.get("callback"):
            self.add_error("choice", _("Record at least one answer or a callback request."))
        return cleaned


class DeviceEnrolForm(forms.Form):
    store = forms.ChoiceField(label=_("Store"))
    name = forms.CharField(
        label=_("Name of this tablet"), max_length=100, widget=forms.TextInput(attrs=OFF)
    )

    def __init__(self, *args: Any, stores: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["store"].choices = [(str(s.pk), s.name) for s in stores]
