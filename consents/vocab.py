"""The words of RULES.md: channels, purposes, event types, methods and reason codes."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    PUSH = "push", _("Push")
    PHONE = "phone", _("Phone")
    POSTAL = "postal", _("Post")


CHANNELS: tuple[str, ...] = tuple(Channel.values)
ANY = "*"


class Purpose(models.TextChoices):
    SERVICE = "service", _("Service")
    PROMOTION = "promotion", _("Promotion")
    NEWSLETTER = "newsletter", _("Newsletter")
    CART_ABANDONMENT = "cart_abandonment", _("Cart abandonment")
    LOYALTY_ENROLMENT = "loyalty_enrolment", _("Loyalty enrolment")
    REACTIVATION = "reactivation", _("Reactivation")
    PARTNER_OFFER = "partner_offer", _("Partner offer")
    REPERMISSION = "repermission", _("Repermission")


PURPOSES: tuple[str, ...] = tuple(Purpose.values)
# Purposes a topic (a consent scope) can have: everything but the two that take no topic.
TOPIC_PURPOSES: tuple[str, ...] = tuple(
    p for p in PURPOSES if p not in (Purpose.SERVICE, Purpose.REPERMISSION)
)


class EventType(models.TextChoices):
    OPT_IN = "opt_in", _("Opt-in")
    DOI_CONFIRMED = "doi_confirmed", _("Double opt-in confirmed")
    OPT_OUT = "opt_out", _("Opt-out")
    COMPLAINT = "complaint", _("Complaint")
    PAUSE = "pause", _("Pause")
    PURCHASE = "purchase", _("Purchase")
    CONTRACT_START = "contract_start", _("Contract start")
    CONTRACT_END = "contract_end", _("Contract end")
    INTERACTION = "interaction", _("Interaction")
    BOUNCE = "bounce", _("Bounce")
    ADDRESS_CHANGED = "address_changed", _("Address changed")
    CALLBACK_REQUEST = "callback_request", _("Callback request")
    REPERMISSION_SENT = "repermission_sent", _("Repermission sent")


EVENT_TYPES: tuple[str, ...] = tuple(EventType.values)


class Method(models.TextChoices):
    WEB_FORM = "web_form", _("Web form")
    DOUBLE_OPT_IN = "double_opt_in", _("Double opt-in")
    PREFERENCE_CENTER = "preference_center", _("Preference center")
    STORE_TABLET = "store_tablet", _("Store tablet")
    PHONE_CALL = "phone_call", _("Phone call")
    UNSUBSCRIBE_LINK = "unsubscribe_link", _("Unsubscribe link")
    ONE_CLICK_UNSUBSCRIBE = "one_click_unsubscribe", _("One-click unsubscribe")
    API = "api", _("API")
    IMPORT = "import", _("Import")
    ADMIN = "admin", _("Admin")
    # Not a person's act: the system records it when an address on the suppression list (it
    # opted out, then was erased) arrives again on a contact.
    SUPPRESSION = "suppression", _("Suppression list")


# The methods of RULES.md, which people and systems may give; ``suppression`` is the ledger's own.
METHODS: tuple[str, ...] = tuple(m for m in Method.values if m != Method.SUPPRESSION)
LEDGER_METHODS: tuple[str, ...] = tuple(Method.values)
# An opt-in collected by these methods is consent only with a reference to the original proof.
METHODS_NEEDING_PROOF = frozenset({Method.IMPORT, Method.API, Method.ADMIN})


class InteractionKind(models.TextChoices):
    CLICK = "click", _("Click")
    REPLY = "reply", _("Reply")
    CONTACT = "contact", _("Contact")
    OPEN = "open", _("Open")


class Doi(models.TextChoices):
    NONE = "none", _("None")
    PENDING = "pending", _("Pending")


class ContactKind(models.TextChoices):
    CONSUMER = "consumer", _("Consumer")
    PROFESSIONAL = "professional", _("Professional")


class Reason(models.TextChoices):
    NO_ADDRESS = "NO_ADDRESS", _("No address for the channel")
    RETENTION_EXPIRED = "RETENTION_EXPIRED", _("Retention period over")
    UNDELIVERABLE = "UNDELIVERABLE", _("Email address undeliverable")
    REPERMISSION = "REPERMISSION", _("Repermission ask due")
    REPERMISSION_NOT_DUE = "REPERMISSION_NOT_DUE", _("Repermission not due")
    SERVICE = "SERVICE", _("Service message")
    OPTED_OUT = "OPTED_OUT", _("Opted out")
    PAUSED = "PAUSED", _("Paused")
    OPT_IN = "OPT_IN", _("Valid consent")
    GENERIC_ADDRESS = "GENERIC_ADDRESS", _("Generic company address")
    LEGITIMATE_INTEREST = "LEGITIMATE_INTEREST", _("Postal, legitimate interest")
    B2B_PROFESSIONAL = "B2B_PROFESSIONAL", _("Professional, related to their profession")
    CONTRACT_IN_PROGRESS = "CONTRACT_IN_PROGRESS", _("Contract in progress")
    CALLBACK_REQUESTED = "CALLBACK_REQUESTED", _("Callback requested")
    SOFT_OPT_IN = "SOFT_OPT_IN", _("Customer, analogous products")
    ALREADY_BOUGHT_PRODUCT = "ALREADY_BOUGHT_PRODUCT", _("Already bought the product")
    CONSENT_PENDING = "CONSENT_PENDING", _("Confirmation pending")
    INVALID_CONSENT = "INVALID_CONSENT", _("Invalid consent")
    NOT_INFORMED = "NOT_INFORMED", _("Not informed at collection")
    NOT_PROFESSIONAL_RELEVANT = "NOT_PROFESSIONAL_RELEVANT", _("Not relevant to the profession")
    NOT_ANALOGOUS = "NOT_ANALOGOUS", _("Nothing analogous bought")
    NO_CONSENT = "NO_CONSENT", _("No consent")
    # Not in RULES.md: Assent's own choice for a topic the company retired (docs/rules.md).
    TOPIC_RETIRED = "TOPIC_RETIRED", _("Topic retired: nothing is sent for it")


REASONS: tuple[str, ...] = tuple(Reason.values)
