"""Every human name of a ledger code, translated, in one place.

The ledger speaks in codes (``sms``, ``opt_out``, ``store_tablet``); people read words. Two readers
need different words for the same code, so each table says whom it is for:

- the person, on the customer pages and in emails: plain words, in a sentence or on a box;
- the officer, in the admin and its explanations: the trade's names, and sentences about a third
  person ("on their preference page").

The ``TextChoices`` labels of ``consents.vocab`` stay the short names of the admin's lists and
filters; the functions below read them for the templates. The translations live in the catalogs
(``locale/``), keyed by these English texts: a text changed here must change there too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from consents.models import ConsentState
from consents.vocab import Channel, Method, Purpose

# --- For the person ------------------------------------------------------------------------------

# A channel as the name of a box or a list item: "Text message (SMS)".
CHANNEL_NAMES = {
    "email": _("Email"),
    "sms": _("Text message (SMS)"),
    "phone": _("Phone call"),
    "push": _("Notification"),
    "postal": _("Post"),
}
# How a message reaches someone, in a sentence: "by text message".
CHANNEL_BY = {
    "email": _("by email"),
    "sms": _("by text message"),
    "phone": _("by phone call"),
    "push": _("by notification"),
    "postal": _("by post"),
}
# A channel as a noun inside a sentence: "your text message".
CHANNEL_WORDS = {
    "email": _("email"),
    "sms": _("text message"),
    "phone": _("phone"),
    "push": _("notification"),
    "postal": _("post"),
}
# What kind of person the ledger holds, in "You are: a private person".
KIND_FOR_PERSON = {
    "consumer": _("a private person"),
    "professional": _("a professional"),
}
# How often a topic is sent, as the name of a choice: "Once a week".
FREQUENCY_NAMES = {
    "daily": _("Every day"),
    "weekly": _("Once a week"),
    "biweekly": _("Every two weeks"),
    "monthly": _("Once a month"),
    "quarterly": _("Once every three months"),
}
# Where a consent stands, on the person's own page.
STATUS_LABELS = {
    ConsentState.Status.OPTED_IN: _("Subscribed"),
    ConsentState.Status.PENDING: _("Waiting for your confirmation"),
    ConsentState.Status.INVALID: _("Not valid: we need to ask you again"),
    ConsentState.Status.OPTED_OUT: _("Unsubscribed"),
    ConsentState.Status.NONE: _("No choice made"),
}
# How a choice was made, in the person's history ("On the phone").
METHOD_FOR_PERSON = {
    Method.WEB_FORM: _("On our website"),
    Method.DOUBLE_OPT_IN: _("By clicking the link in our email"),
    Method.PREFERENCE_CENTER: _("On this page"),
    Method.STORE_TABLET: _("In a store"),
    Method.PHONE_CALL: _("On the phone"),
    Method.UNSUBSCRIBE_LINK: _("With the unsubscribe link of an email"),
    Method.ONE_CLICK_UNSUBSCRIBE: _("With the unsubscribe button of your email program"),
    Method.API: _("Through one of our systems"),
    Method.IMPORT: _("Brought over from one of our earlier systems"),
    Method.ADMIN: _("Recorded by our customer service"),
    Method.SUPPRESSION: _(
        "From your earlier request, kept on our suppression list after your data was erased"
    ),
}


def channel_label(channel: str) -> Any:
    """``sms`` -> "Text message (SMS)" (lazy: it follows the active language)."""
    return CHANNEL_NAMES.get(channel, channel)


def channel_by(channel: str) -> str:
    """``sms`` -> "by text message", in the active language."""
    return str(CHANNEL_BY.get(channel, channel))


def channels_by(channels: Sequence[str]) -> str:
    """Several channels in one sentence: "by email or by text message"."""
    words = [channel_by(c) for c in dict.fromkeys(channels)]
    if len(words) <= 1:
        return "".join(words)
    return str(_("%(first)s or %(last)s") % {"first": ", ".join(words[:-1]), "last": words[-1]})


def channel_words(channel: str) -> str:
    """A channel inside a sentence: "text message", "SMS"."""
    return str(CHANNEL_WORDS.get(channel, channel))


def frequency_label(frequency: str) -> str:
    """``weekly`` -> "Once a week", in the active language."""
    return str(FREQUENCY_NAMES.get(frequency, frequency))


# --- For the officer -----------------------------------------------------------------------------

# How a fact was collected, in a sentence about the person ("on their preference page"); the
# store's name, when there is one, is added by ``consents.explain.how``.
METHOD_HOW = {
    Method.WEB_FORM: _("on the website's sign-up form"),
    Method.DOUBLE_OPT_IN: _("by clicking the link of our confirmation email"),
    Method.PREFERENCE_CENTER: _("on their preference page"),
    Method.PHONE_CALL: _("on the phone"),
    Method.UNSUBSCRIBE_LINK: _("with the unsubscribe link of an email"),
    Method.ONE_CLICK_UNSUBSCRIBE: _("with the unsubscribe button of their email program"),
    Method.API: _("through one of our systems (API)"),
    Method.IMPORT: _("brought over by an import"),
    Method.ADMIN: _("recorded by our customer service"),
    Method.SUPPRESSION: _("from the suppression list, after an erasure"),
}
# The values of the dashboards' rows (the CSV files keep the codes).
DASHBOARD_CHANNELS = {
    "email": pgettext_lazy("channel", "Email"),
    "sms": pgettext_lazy("channel", "SMS"),
    "push": pgettext_lazy("channel", "Push notification"),
    "phone": pgettext_lazy("channel", "Phone"),
    "postal": pgettext_lazy("channel", "Post"),
}
DASHBOARD_METHODS = {
    "web_form": pgettext_lazy("consent method", "Web form"),
    "double_opt_in": pgettext_lazy("consent method", "Double opt-in"),
    "preference_center": pgettext_lazy("consent method", "Preference center"),
    "store_tablet": pgettext_lazy("consent method", "Store tablet"),
    "phone_call": pgettext_lazy("consent method", "Phone call"),
    "unsubscribe_link": pgettext_lazy("consent method", "Unsubscribe link"),
    "one_click_unsubscribe": pgettext_lazy("consent method", "One-click unsubscribe"),
    "api": pgettext_lazy("consent method", "API"),
    "import": pgettext_lazy("consent method", "Import"),
    "admin": pgettext_lazy("consent method", "Admin"),
    # How people leave counts complaints (spam reports) with the unsubscribe methods.
    "complaint": pgettext_lazy("consent method", "Complaint (spam report)"),
}


def channel_name(channel: str) -> str:
    """The admin's short name of a channel ("SMS"): the ``Channel`` choice's label."""
    return str(Channel(channel).label) if channel in Channel.values else channel


def status_name(status: str) -> str:
    """The admin's name of a stored consent state."""
    if status in ConsentState.Status.values:
        return str(ConsentState.Status(status).label)
    return status


def purpose_name(purpose: str) -> str:
    return str(Purpose(purpose).label) if purpose in Purpose.values else purpose
