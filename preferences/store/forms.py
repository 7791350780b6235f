"""Forms of the store tablet and the phone capture. They check shape; the services decide."""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.contrib.auth.password_validation import password_validators_help_texts
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from consents.models import Category
from preferences.forms import (
    FIRST_NAME_MAX_LENGTH,
    AnyChoiceField,
    ChoicesForm,
    TelInput,
    TopicGroup,
    describe_errors,
    email_cleaned,
    first_name_cleaned,
    phone_cleaned,
)
from preferences.store.services import Confirm

MAX_CHOICES = 100

# No autofill anywhere: a shared tablet must never offer one customer's details to the next.
OFF = {"autocomplete": "off", "autocapitalize": "off", "spellcheck": "false"}


def new_key() -> str:
    return secrets.token_hex(16)


class _StoreChoice:
    """For a form with a ``store`` field: it offers the staff member's own stores, and
    ``chosen_store`` is the one picked (once the form is valid)."""

    fields: dict[str, Any]
    cleaned_data: dict[str, Any]

    def offer_stores(self, stores: list[Any]) -> None:
        self.stores = stores
        self.fields["store"].choices = [(str(s.pk), s.name) for s in stores]

    def chosen_store(self) -> Any:
        return next(s for s in self.stores if str(s.pk) == self.cleaned_data["store"])


def email_field(label: Any) -> forms.CharField:
    """A customer's email address, optional when a phone is given; checked by ``_AddressForm``."""
    return forms.CharField(
        label=label, max_length=254, required=False, widget=forms.EmailInput(attrs=OFF)
    )


def phone_field(label: Any) -> forms.CharField:
    """A customer's mobile phone, optional when an email is given; checked by ``_AddressForm``."""
    return forms.CharField(label=label, max_length=32, required=False, widget=TelInput(attrs=OFF))


class _AddressForm(forms.Form):
    """A customer's ``email`` and ``phone`` fields (``email_field``, ``phone_field``), each
    cleaned as the ledger stores it, at least one of them given."""

    def clean_email(self) -> str:
        raw = self.cleaned_data["email"].strip()
        return email_cleaned(raw) if raw else ""

    def clean_phone(self) -> str:
        return phone_cleaned(self.cleaned_data["phone"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "email" in cleaned and "phone" in cleaned and not (cleaned["email"] or cleaned["phone"]):
            self.add_error("email", _("Enter an email address or a phone number."))
        return cleaned


class _CaptureForm(_AddressForm, ChoicesForm):
    key = forms.CharField(max_length=64, widget=forms.HiddenInput)
    language = forms.ChoiceField(
        choices=[("fr", "fr"), ("en", "en")], required=False, widget=forms.HiddenInput
    )
    email = email_field(_("Email address"))
    phone = phone_field(_("Mobile phone"))
    first_name = forms.CharField(
        label=_("First name (optional)"),
        max_length=FIRST_NAME_MAX_LENGTH,
        required=False,
        widget=forms.TextInput(attrs=OFF),
    )
    choice = AnyChoiceField(label=_("Your choices"), required=False)

    def __init__(self, *args: Any, groups: list[TopicGroup], **kwargs: Any) -> None:
        super().__init__(*args, groups=groups, **kwargs)
        self.fields["email"].widget.attrs["aria-describedby"] = "address-hint"

    def describe_errors(self) -> None:
        describe_errors(self, skip=("choice",))

    def clean_first_name(self) -> str:
        return first_name_cleaned(
            self.cleaned_data["first_name"],
            _("Enter only a first name, in letters (hyphens and apostrophes are fine)."),
        )

    def clean_choice(self) -> list[str]:
        values = list(dict.fromkeys(self.cleaned_data["choice"]))
        if len(values) > MAX_CHOICES or any(v not in self.offered for v in values):
            raise ValidationError(_("This choice is not offered."), code="invalid_choice")
        return values

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        values = cleaned.get("choice")
        if values and self.phone_missing(cleaned, values):
            self.add_error("phone", _("Enter a phone number for text messages or calls."))
        return cleaned


class StoreCaptureForm(_CaptureForm):
    confirm = forms.ChoiceField(
        choices=[(c.value, c.value) for c in Confirm], required=False, widget=forms.HiddenInput
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "choice" in cleaned and not cleaned["choice"]:
            self.add_error("choice", _("Choose at least one topic and how to receive it."))
        confirm = cleaned.get("confirm")
        if not confirm:
            self.add_error(None, _("Choose how to confirm."))
        elif confirm == Confirm.EMAIL and not cleaned.get("email") and cleaned.get("phone"):
            self.add_error("email", _("Enter an email address to confirm by email."))
        return cleaned


class StorePurchaseForm(_AddressForm):
    """A purchase made today, on the staff screen: who bought (email or phone) and what."""

    key = forms.CharField(max_length=64, widget=forms.HiddenInput)
    email = email_field(_("The customer’s email address"))
    phone = phone_field(_("or their mobile phone"))
    purchase_category = forms.ChoiceField(label=_("Product category"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        categories = sorted(Category.objects.all(), key=lambda c: (c.label.casefold(), c.slug))
        self.fields["purchase_category"].choices = [("", "—")] + [
            (c.slug, c.label) for c in categories
        ]
        self.fields["purchase_category"].error_messages["required"] = _(
            "Choose the category of the purchase."
        )

    def describe_errors(self) -> None:
        describe_errors(self)


# On the phone each topic x channel is one radio group, named after the option it answers.
ANSWER_PREFIX = "answer:"
YES, NO, NOT_ASKED = "yes", "no", ""
ANSWERS = (YES, NO, NOT_ASKED)


class PhoneCaptureForm(_CaptureForm):
    """The caller's answers: for each topic x channel, yes, no, or not asked (the default).

    The ``choice`` field stands for all the answers (its errors are shown on the script); the
    answers themselves come as one radio group per option, ``answer:<topic>:<channel>``."""

    call_reference = forms.CharField(
        label=_("Call reference"),
        max_length=200,
        widget=forms.TextInput(attrs=OFF),
    )
    callback = forms.BooleanField(label=_("The caller asks to be called back"), required=False)
    # L34-5 CPCE: consent to live calls does not cover recorded or automated ones.
    automated = forms.BooleanField(
        label=_("For calls: the caller also agrees to recorded or automated calls"),
        required=False,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["choice"].label = _("The caller's answers")
        self.refused_values: list[str] = []

    def answered(self) -> dict[str, str]:
        """What was posted, per offered option, to show it again."""
        if not self.is_bound:
            return {}
        return {
            value: answer
            for value in self.offered
            if (answer := self.data.get(ANSWER_PREFIX + value, NOT_ASKED)) in (YES, NO)
        }

    def clean_choice(self) -> list[str]:
        yes: list[str] = []
        no: list[str] = []
        for name in self.data:
            if not name.startswith(ANSWER_PREFIX):
                continue
            value = name.removeprefix(ANSWER_PREFIX)
            answers = self.data.getlist(name)
            if (
                value not in self.offered
                or len(answers) != 1
                or answers[0] not in ANSWERS
                or len(yes) + len(no) >= MAX_CHOICES
            ):
                raise ValidationError(_("This choice is not offered."), code="invalid_choice")
            if answers[0] == YES:
                yes.append(value)
            elif answers[0] == NO:
                no.append(value)
        self.refused_values = no
        return yes

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("callback") and "phone" in cleaned and not cleaned["phone"]:
            self.add_error("phone", _("Enter the phone number to call back."))
        if (
            "choice" in cleaned
            and not cleaned["choice"]
            and not self.refused_values
            and not cleaned.get("callback")
        ):
            self.add_error("choice", _("Record at least one answer or a callback request."))
        return cleaned

    @property
    def refusals(self) -> list[tuple[str, str]]:
        if "choice" not in self.cleaned_data:
            return []
        return [_pair(value) for value in self.refused_values]


def _pair(value: str) -> tuple[str, str]:
    slug, _sep, channel = value.partition(":")
    return slug, channel


class DeviceEnrolForm(_StoreChoice, forms.Form):
    store = forms.ChoiceField(label=_("Store"))
    name = forms.CharField(
        label=_("Name of this tablet"), max_length=100, widget=forms.TextInput(attrs=OFF)
    )

    def __init__(self, *args: Any, stores: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offer_stores(stores)


class _AccountForm(forms.Form):
    """A form about an account: each input tied to its hint and error, two passwords that match."""

    def describe_errors(self) -> None:
        describe_errors(self, hints=True)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", _("The two passwords are not the same."))
        return cleaned


def _password_fields(form: forms.Form, label: Any, again: Any) -> None:
    """The new password, typed twice; the rules the validators apply, in the page's language."""
    attrs = {"autocomplete": "new-password"}
    form.fields["password1"] = forms.CharField(
        label=label,
        strip=False,
        help_text=" ".join(password_validators_help_texts()),
        widget=forms.PasswordInput(attrs=attrs),
    )
    form.fields["password2"] = forms.CharField(
        label=again, strip=False, widget=forms.PasswordInput(attrs=attrs)
    )


class StaffCreateForm(_StoreChoice, _AccountForm):
    """A new staff account; ``staff.staff_create`` checks the store and the password rules."""

    username = forms.CharField(
        label=_("Username"),
        max_length=150,
        help_text=_("Letters, digits and @ . + - _ only. The staff member logs in with it."),
        widget=forms.TextInput(attrs={**OFF, "autocomplete": "off"}),
    )
    first_name = forms.CharField(
        label=_("First name (optional)"),
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs=OFF),
    )
    last_name = forms.CharField(
        label=_("Last name (optional)"),
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs=OFF),
    )
    email = forms.EmailField(
        label=_("Email address (optional)"),
        max_length=254,
        required=False,
        widget=forms.EmailInput(attrs=OFF),
    )
    store = forms.ChoiceField(label=_("Store"))

    def __init__(self, *args: Any, stores: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offer_stores(stores)
        _password_fields(self, _("Initial password"), _("Initial password, again"))


class StaffPasswordForm(_AccountForm):
    """A store manager's new password for a staff member; ``staff.staff_password_set`` checks
    the account and the password rules."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _password_fields(self, _("New password"), _("New password, again"))


class OwnPasswordForm(_AccountForm):
    """A staff member's own new password, given the current one."""

    old_password = forms.CharField(
        label=_("Current password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _password_fields(self, _("New password"), _("New password, again"))


class StaffStoreForm(_StoreChoice, forms.Form):
    """Which of the manager's stores to add an account to, or remove it from."""

    store = forms.ChoiceField(label=_("Store"))

    def __init__(self, *args: Any, stores: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offer_stores(stores)
