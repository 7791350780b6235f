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
from consents.vocab import Channel, Method, Purpose, Reason

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


# A reason of ``rules.decide`` in a few words, for the summary of the contact page.
REASON_WORDS = {
    Reason.NO_ADDRESS: _("we have no address for this channel"),
    Reason.RETENTION_EXPIRED: _("the retention period is over: no more marketing"),
    Reason.UNDELIVERABLE: _("the address is undeliverable (hard bounces)"),
    Reason.REPERMISSION: _("a one-time request to confirm their choices is due"),
    Reason.REPERMISSION_NOT_DUE: _("no request to confirm their choices is due yet"),
    Reason.SERVICE: _("a service message, which needs no consent"),
    Reason.OPTED_OUT: _("this person said no"),
    Reason.PAUSED: _("this person paused our marketing"),
    Reason.OPT_IN: _("this person said yes"),
    Reason.GENERIC_ADDRESS: _("a generic company address (legitimate interest)"),
    Reason.LEGITIMATE_INTEREST: _(
        "post on legitimate interest: informed at collection, no objection"
    ),
    Reason.B2B_PROFESSIONAL: _("a professional, about their profession"),
    Reason.CONTRACT_IN_PROGRESS: _("a contract in progress for a related product"),
    Reason.CALLBACK_REQUESTED: _("this person asked to be called back"),
    Reason.SOFT_OPT_IN: _("a customer, for analogous products (soft opt-in)"),
    Reason.ALREADY_BOUGHT_PRODUCT: _("this person already bought the product"),
    Reason.CONSENT_PENDING: _("the yes waits for its email confirmation"),
    Reason.INVALID_CONSENT: _("the yes on file was not validly given"),
    Reason.NOT_INFORMED: _("not informed at collection that they could object"),
    Reason.NOT_PROFESSIONAL_RELEVANT: _("not related to this professional's profession"),
    Reason.NOT_ANALOGOUS: _("nothing analogous was bought"),
    Reason.NO_CONSENT: _("no consent"),
    Reason.TOPIC_RETIRED: _("the topic is retired: nothing is sent for it"),
}


# --- For other systems (the API) ------------------------------------------------------------------

# Each reason of ``rules.decide`` in a sentence, in both languages (RULES.md's terms).
REASON_TEXTS: dict[str, dict[str, str]] = {
    Reason.NO_ADDRESS: {
        "en": "We have no address for this channel.",
        "fr": "Nous n’avons pas d’adresse pour ce canal.",
    },
    Reason.RETENTION_EXPIRED: {
        "en": "The period we may keep this person's data for marketing is over.",
        "fr": "La durée de conservation des données de cette personne pour la prospection est "
        "écoulée.",
    },
    Reason.UNDELIVERABLE: {
        "en": "Emails to this address cannot be delivered.",
        "fr": "Les emails à cette adresse ne peuvent pas être distribués.",
    },
    Reason.REPERMISSION: {
        "en": "One neutral request to renew consent is due before the data expires.",
        "fr": "Une demande neutre de renouvellement du consentement est due avant l’expiration "
        "des données.",
    },
    Reason.REPERMISSION_NOT_DUE: {
        "en": "A request to renew consent is not due (already asked, or not yet time).",
        "fr": "Une demande de renouvellement n’est pas due (déjà faite, ou pas encore le moment).",
    },
    Reason.SERVICE: {
        "en": "A service message without promotion needs no consent.",
        "fr": "Un message de service sans promotion ne demande pas de consentement.",
    },
    Reason.OPTED_OUT: {
        "en": "The person opted out of this.",
        "fr": "La personne s’y est opposée.",
    },
    Reason.PAUSED: {
        "en": "The person paused marketing on this channel for now.",
        "fr": "La personne a mis en pause la prospection sur ce canal.",
    },
    Reason.OPT_IN: {
        "en": "The person gave valid consent to this topic on this channel.",
        "fr": "La personne a donné un consentement valable pour ce sujet sur ce canal.",
    },
    Reason.GENERIC_ADDRESS: {
        "en": "A generic company address (such as contact@) may receive professional offers.",
        "fr": "Une adresse générique d’entreprise (comme contact@) peut recevoir des offres "
        "professionnelles.",
    },
    Reason.LEGITIMATE_INTEREST: {
        "en": "Post is allowed on legitimate interest: the person was informed and did not object.",
        "fr": "Le courrier postal est permis sur intérêt légitime : la personne a été informée et "
        "ne s’y est pas opposée.",
    },
    Reason.B2B_PROFESSIONAL: {
        "en": "A professional may be contacted about offers related to their profession.",
        "fr": "Un professionnel peut être sollicité pour des offres en rapport avec sa profession.",
    },
    Reason.CONTRACT_IN_PROGRESS: {
        "en": "A call about a contract in progress, for a related product, is allowed.",
        "fr": "Un appel au sujet d’un contrat en cours, pour un produit lié, est permis.",
    },
    Reason.CALLBACK_REQUESTED: {
        "en": "The person asked to be called back, recently.",
        "fr": "La personne a demandé à être rappelée, récemment.",
    },
    Reason.SOFT_OPT_IN: {
        "en": "A customer may receive offers for products like those they bought, unless they "
        "objected.",
        "fr": "Un client peut recevoir des offres pour des produits analogues à ceux achetés, "
        "sauf opposition.",
    },
    Reason.ALREADY_BOUGHT_PRODUCT: {
        "en": "The person already bought this product.",
        "fr": "La personne a déjà acheté ce produit.",
    },
    Reason.CONSENT_PENDING: {
        "en": "The person signed up but has not confirmed by email yet.",
        "fr": "La personne s’est inscrite mais n’a pas encore confirmé par email.",
    },
    Reason.INVALID_CONSENT: {
        "en": "The recorded consent is not valid (pre-ticked, bundled or without proof).",
        "fr": "Le consentement enregistré n’est pas valable (pré-coché, groupé ou sans preuve).",
    },
    Reason.NOT_INFORMED: {
        "en": "The person was not informed when their data was collected.",
        "fr": "La personne n’a pas été informée lors de la collecte de ses données.",
    },
    Reason.NOT_PROFESSIONAL_RELEVANT: {
        "en": "The offer is not related to this professional's profession.",
        "fr": "L’offre est sans rapport avec la profession de ce professionnel.",
    },
    Reason.NOT_ANALOGOUS: {
        "en": "The customer bought nothing analogous to what this message offers.",
        "fr": "Le client n’a rien acheté d’analogue à ce que propose ce message.",
    },
    Reason.NO_CONSENT: {
        "en": "There is no consent and no other basis to send this.",
        "fr": "Il n’y a ni consentement ni autre fondement pour envoyer ce message.",
    },
    Reason.TOPIC_RETIRED: {
        "en": "This topic is retired: nothing is sent for it.",
        "fr": "Ce sujet est retiré : plus rien n’est envoyé à son titre.",
    },
}


def reason_text(reason: str, language: str) -> str:
    """A reason of ``rules.decide`` in plain words, in the language asked for (the API answers in
    French or English whatever the request's language, so these are not in the catalogs)."""
    texts = REASON_TEXTS.get(reason, {})
    return texts.get(language) or texts.get("en") or reason
