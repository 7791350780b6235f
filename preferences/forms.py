"""Forms of the public pages. They check shape and size; the services decide what is recorded."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from consents import catalogue, links, services
from consents.labels import channel_label
from consents.models import LANGUAGES, Notice, Topic
from preferences.services import PHONE_CHANNELS, SIGNUP_CHANNELS, notice_for

# A real form never sends more than a few dozen choices; anything beyond is not a person.
MAX_CHOICES = 100
MAX_CHOICE_LENGTH = 80
FIRST_NAME_MAX_LENGTH = services.FIRST_NAME_MAX_LENGTH


# --- Cleaning the person's details: the same rules on every form that collects them ---------


def email_cleaned(raw: str) -> str:
    """The address as the ledger stores it, or a field error in the page's language."""
    try:
        return services.normalize_email(raw)
    except ValidationError:
        raise ValidationError(_("Enter a valid email address."), code="invalid") from None


def phone_cleaned(raw: str) -> str:
    """E.164, or "" when left blank."""
    if not raw.strip():
        return ""
    try:
        return services.normalize_phone(raw)
    except ValidationError:
        raise ValidationError(
            _("Enter a phone number such as 06 12 34 56 78 or +33 6 12 34 56 78."),
            code="invalid",
        ) from None


def first_name_cleaned(raw: str, message: Any) -> str:
    """A first name is greeted in the confirmation email: only letters and what joins the parts
    of a name, short (``services.normalize_first_name``), so that the form cannot be used to
    send someone else a message of the sender's choosing."""
    try:
        return services.normalize_first_name(raw)
    except ValidationError:
        raise ValidationError(message, code="invalid") from None


FIRST_NAME_ONLY = _("Enter only your first name, in letters (hyphens and apostrophes are fine).")


def describe_errors(form: forms.Form, *, skip: tuple[str, ...] = (), hints: bool = False) -> None:
    """Tie each input to its error message (and, with ``hints``, its help text), keeping what
    it was already described by, for screen readers."""
    for name, field in form.fields.items():
        if name in skip:
            continue
        attrs = field.widget.attrs
        ids = attrs.get("aria-describedby", "").split()
        if hints and field.help_text:
            ids.append(f"id_{name}_helptext")
        invalid = name in form.errors
        if invalid:
            ids.append(f"id_{name}_error")
        if ids:
            attrs["aria-describedby"] = " ".join(dict.fromkeys(ids))
        if invalid:
            attrs["aria-invalid"] = "true"


@dataclass(frozen=True)
class ChoiceOption:
    value: str  # "topic:channel"
    channel: str
    label: str
    needs_phone: bool

    @property
    def dom_id(self) -> str:
        return "choice-" + re.sub(r"[^\w-]", "-", self.value)


@dataclass(frozen=True)
class TopicGroup:
    topic: Topic
    notice: Notice | None
    options: list[ChoiceOption]


def topic_groups(topics: list[Topic], language: str) -> list[TopicGroup]:
    """What the form offers: each topic, its channels on this form, and the wording shown."""
    groups = []
    for topic in topics:
        options = [
            ChoiceOption(
                value=f"{topic.slug}:{channel}",
                channel=channel,
                label=str(channel_label(channel)),
                needs_phone=channel in PHONE_CHANNELS,
            )
            for channel in topic.channels
            if channel in SIGNUP_CHANNELS
        ]
        if options:
            groups.append(TopicGroup(topic, notice_for(topic, language), options))
    return groups


# --- The wording a page showed -------------------------------------------------------------------
# Each form that collects a yes carries, signed by the server, the notice it showed per topic:
# the ledger records what the person read, even if a new version was published meanwhile, and
# never a notice id the browser chose.

SHOWN_FIELD = "notices"
PAGE_CHANGED = _(
    "This page was changed since it was shown. Please check your choices and send them again."
)


def shown_signed(notices: Mapping[str, Notice | None]) -> str:
    """The value of the form's hidden ``notices`` field: {topic slug: notice id}, signed."""
    payload = {slug: notice.pk if notice else None for slug, notice in notices.items()}
    return links.seal("notices_shown", payload)


def shown_read(data: Any) -> dict[str, Notice | None] | None:
    """The notices the posted page showed, per topic slug; None when the form carries none (a
    page drawn before it did: the caller uses what it shows now). A value that is not ours, or
    names a notice that is not a published one of that topic, is a ValidationError."""
    raw = data.get(SHOWN_FIELD)
    if raw is None:
        return None
    try:
        payload = links.unseal("notices_shown", raw)
    except links.SealBroken:
        raise ValidationError(PAGE_CHANGED, code="stale") from None
    if not isinstance(payload, dict) or not all(
        isinstance(slug, str) and (pk is None or type(pk) is int) for slug, pk in payload.items()
    ):
        raise ValidationError(PAGE_CHANGED, code="stale")
    # The page showed the latest wording, almost always: the catalogue has it in memory; an
    # earlier version (a notice published since the page was drawn) is read from the database.
    snapshot = catalogue.snapshot()
    wanted = {pk for pk in payload.values() if pk is not None}
    found = {pk: notice for pk in wanted if (notice := snapshot.notice_by_pk.get(pk)) is not None}
    if len(found) < len(wanted):
        found.update(Notice.objects.select_related("topic").in_bulk(wanted - found.keys()))
    shown: dict[str, Notice | None] = {}
    for slug, pk in payload.items():
        notice = found.get(pk) if pk is not None else None
        if pk is not None and (
            notice is None
            or notice.published_at is None
            or (notice.topic_id is not None and _topic_slug(snapshot, notice) != slug)
        ):
            raise ValidationError(PAGE_CHANGED, code="stale")
        shown[slug] = notice
    return shown


def _topic_slug(snapshot: catalogue.Snapshot, notice: Notice) -> str:
    topic = snapshot.topic_by_pk.get(notice.topic_id)
    return topic.slug if topic is not None else notice.topic.slug


class TelInput(forms.TextInput):
    input_type = "tel"


class AnyChoiceField(forms.MultipleChoiceField):
    """Accepts any value: the form checks them against the topics itself, with a clear message."""

    def valid_value(self, value: Any) -> bool:
        return True


class ChoicesForm(forms.Form):
    """A form whose ``choice`` boxes are the (topic, channel) options of ``groups``: the sign-up
    form and the store's capture forms."""

    def __init__(self, *args: Any, groups: list[TopicGroup], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.groups = groups
        self.offered = {o.value: o for g in groups for o in g.options}
        # The wording this page shows now; once valid, the one the posted page showed.
        self.notices: dict[str, Notice | None] = {g.topic.slug: g.notice for g in groups}

    @property
    def notices_signed(self) -> str:
        """The hidden field's value for the page drawn now."""
        return shown_signed({g.topic.slug: g.notice for g in self.groups})

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        posted = shown_read(self.data)
        if posted is not None:
            self.notices = {**self.notices, **posted}
        return cleaned

    def phone_missing(self, cleaned: dict[str, Any], values: list[str]) -> bool:
        """A ticked choice needs a phone number and none was given (a number that failed its
        own cleaning is absent from ``cleaned``: that error is already shown)."""
        return (
            "phone" in cleaned
            and not cleaned["phone"]
            and any(self.offered[v].needs_phone for v in values)
        )

    @property
    def choices(self) -> list[tuple[str, str]]:
        """The (topic, channel) pairs ticked, once the form is valid."""
        pairs = []
        for value in self.cleaned_data.get("choice", []):
            slug, _sep, channel = value.partition(":")
            pairs.append((slug, channel))
        return pairs

    def ticked(self) -> set[str]:
        """The values to show ticked again when the form is redisplayed."""
        return (
            {v for v in self.data.getlist("choice") if v in self.offered}
            if self.is_bound
            else set()
        )


class SubscribeForm(ChoicesForm):
    email = forms.EmailField(
        label=_("Email address"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "spellcheck": "false"}),
    )
    first_name = forms.CharField(
        label=_("First name (optional)"),
        max_length=FIRST_NAME_MAX_LENGTH,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )
    phone = forms.CharField(
        label=_("Mobile phone (optional)"),
        help_text=_("Only needed for text messages and calls. For example 06 12 34 56 78."),
        max_length=32,
        required=False,
        widget=TelInput(attrs={"autocomplete": "tel"}),
    )
    language = forms.ChoiceField(
        label=_("Language of our messages"),
        choices=LANGUAGES,
        widget=forms.RadioSelect,
    )
    choice = AnyChoiceField(label=_("Your choices"), required=False)
    # Bots fill every field; people never see this one (visually hidden, out of the tab order).
    website = forms.CharField(
        label=_("Leave this field empty"),
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "tabindex": "-1"}),
    )

    def __init__(self, *args: Any, groups: list[TopicGroup], **kwargs: Any) -> None:
        super().__init__(*args, groups=groups, **kwargs)
        language = (get_language() or "fr")[:2]
        self.fields["language"].initial = language if language in ("fr", "en") else "fr"

    @property
    def is_bot(self) -> bool:
        return bool(self.data.get("website"))

    def clean_email(self) -> str:
        return email_cleaned(self.cleaned_data["email"])

    def clean_first_name(self) -> str:
        return first_name_cleaned(self.cleaned_data["first_name"], FIRST_NAME_ONLY)

    def clean_phone(self) -> str:
        return phone_cleaned(self.cleaned_data["phone"])

    def clean_choice(self) -> list[str]:
        values = self.cleaned_data["choice"]
        if len(values) > MAX_CHOICES or any(len(v) > MAX_CHOICE_LENGTH for v in values):
            raise ValidationError(_("This choice is not offered."), code="invalid_choice")
        return list(dict.fromkeys(values))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        values = cleaned.get("choice")
        if values is None:
            return cleaned
        if any(v not in self.offered for v in values):
            # Only a tampered or outdated form gets here: say it once, for the whole form.
            raise ValidationError(
                _("One of your choices is no longer offered. Please check them again."),
                code="invalid_choice",
            )
        if not values:
            self.add_error("choice", _("Choose at least one topic and how to receive it."))
        elif self.phone_missing(cleaned, values):
            self.add_error("phone", _("Enter your phone number to receive text messages or calls."))
        return cleaned


# --- The preference center ----------------------------------------------------------------------

MAX_CELLS = 2000
NOT_OFFERED = _("One of your choices is no longer offered. Please check them again.")


class LinkRequestForm(forms.Form):
    email = forms.EmailField(
        label=_("Your email address"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "spellcheck": "false"}),
    )

    def clean_email(self) -> str:
        return email_cleaned(self.cleaned_data["email"])


@dataclass(frozen=True)
class PreferencesChoice:
    """What a preference-center form says, once checked against the topics offered."""

    shown: list[tuple[str, str]]
    wanted: list[tuple[str, str]]
    frequencies: dict[str, str]
    # The wording the page showed per topic (signed into it); None: a page drawn without it.
    notices: dict[str, Notice | None] | None


def _pair(value: str, topics: dict[str, Topic]) -> tuple[str, str]:
    slug, _sep, channel = value.partition(":")
    topic = topics.get(slug)
    if topic is None or not topic.active or channel not in topic.channels:
        raise ValidationError(NOT_OFFERED)
    return slug, channel


def preferences_choice(data: Any, topics: dict[str, Topic]) -> PreferencesChoice:
    """Parse the preference-center form; any topic, channel or frequency not offered is refused.

    Only a tampered or outdated form names one: the whole form is refused, nothing is recorded.
    """
    # The boxes shown come in one field, separated by spaces (no slug or channel holds one); a
    # page drawn before they did sent one field per box.
    shown_raw = [v for field in data.getlist("shown")[:MAX_CELLS] for v in field.split()]
    wanted_raw = data.getlist("on")
    if len(shown_raw) > MAX_CELLS or len(wanted_raw) > MAX_CELLS:
        raise ValidationError(_("This choice is not offered."))
    shown = [_pair(v, topics) for v in dict.fromkeys(shown_raw)]
    wanted = [_pair(v, topics) for v in dict.fromkeys(wanted_raw)]
    if not set(wanted) <= set(shown):
        raise ValidationError(NOT_OFFERED)
    frequencies: dict[str, str] = {}
    for key in data:
        if key.startswith("frequency-"):
            slug = key.removeprefix("frequency-")
            value = data.get(key, "")
            topic = topics.get(slug)
            if topic is None or not topic.active or (value and value not in topic.frequencies):
                raise ValidationError(_("This frequency is not offered."))
            if value:
                frequencies[slug] = value
    notices = shown_read(data)
    if notices is not None:
        notices = {slug: notice for slug, notice in notices.items() if slug in topics}
    return PreferencesChoice(shown, wanted, frequencies, notices)
