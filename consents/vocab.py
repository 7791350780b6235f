"""The words of RULES.md: channels, purposes, event types, methods and reason codes."""

from __future__ import annotations

from django.db import models


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push", "Push"
    PHONE = "phone", "Phone"
    POSTAL = "postal", "Post"


CHANNELS: tuple[str, ...] = tuple(Channel.values)
ANY = "*"


class Purpose(models.TextChoices):
    SERVICE = "service", "Service"
    PROMOTION = "promotion", "Promotion"
    NEWSLETTER = "newsletter", "Newsletter"
    CART_ABANDONMENT = "cart_abandonment", "Cart abandonment"
    LOYALTY_ENROLMENT = "loyalty_enrolment", "Loyalty enrolment"
    REACTIVATION = "reactivation", "Reactivation"
    PARTNER_OFFER = "partner_offer", "Partner offer"
    REPERMISSION = "repermission", "Repermission"


PURPOSES: tuple[str, ...] = tuple(Purpose.values)
# Purposes a topic (a consent scope) can have: everything but the two that take no topic.
TOPIC_PURPOSES: tuple[str, ...] = tuple(
    p for p in PURPOSES if p not in (Purpose.SERVICE, Purpose.REPERMISSION)
)


class EventType(models.TextChoices):
    OPT_IN = "opt_in", "Opt-in"
    DOI_CONFIRMED = "doi_confirmed", "Double opt-in confirmed"
    OPT_OUT = "opt_out", "Opt-out"
    COMPLAINT = "complaint", "Complaint"
    PAUSE = "pause", "Pause"
    PURCHASE = "purchase", "Purchase"
    CONTRACT_START = "contract_start", "Contract start"
    CONTRACT_END = "contract_end", "Contract end"
    INTERACTION = "interaction", "Interaction"
    BOUNCE = "bounce", "Bounce"
    ADDRESS_CHANGED = "address_changed", "Address changed"
    CALLBACK_REQUEST = "callback_request", "Callback request"
    REPERMISSION_SENT = "repermission_sent", "Repermission sent"


EVENT_TYPES: tuple[str, ...] = tuple(EventType.values)


class Method(models.TextChoices):
    WEB_FORM = "web_form", "Web form"
    DOUBLE_OPT_IN = "double_opt_in", "Double opt-in"
    PREFERENCE_CENTER = "preference_center", "Preference center"
    STORE_TABLET = "store_tablet", "Store tablet"
    PHONE_CALL = "phone_call", "Phone call"
    UNSUBSCRIBE_LINK = "unsubscribe_link", "Unsubscribe link"
    ONE_CLICK_UNSUBSCRIBE = "one_click_unsubscribe", "One-click unsubscribe"
    API = "api", "API"
    IMPORT = "import", "Import"
    ADMIN = "admin", "Admin"
    # Not a person's act: the system records it when an address on the suppression list (it
    # opted out, then was erased) arrives again on a contact.
    SUPPRESSION = "suppression", "Suppression list"


# The methods of RULES.md, which people and systems may give; ``suppression`` is the ledger's own.
METHODS: tuple[str, ...] = tuple(m for m in Method.values if m != Method.SUPPRESSION)
LEDGER_METHODS: tuple[str, ...] = tuple(Method.values)
# An opt-in collected by these methods is consent only with a reference to the original proof.
METHODS_NEEDING_PROOF = frozenset({Method.IMPORT, Method.API, Method.ADMIN})


class InteractionKind(models.TextChoices):
    CLICK = "click", "Click"
    REPLY = "reply", "Reply"
    CONTACT = "contact", "Contact"
    OPEN = "open", "Open"


class Doi(models.TextChoices):
    NONE = "none", "None"
    PENDING = "pending", "Pending"


class ContactKind(models.TextChoices):
    CONSUMER = "consumer", "Consumer"
    PROFESSIONAL = "professional", "Professional"


class Reason(models.TextChoices):
    NO_ADDRESS = "NO_ADDRESS", "No address for the channel"
    RETENTION_EXPIRED = "RETENTION_EXPIRED", "Retention period over"
    UNDELIVERABLE = "UNDELIVERABLE", "Email address undeliverable"
    REPERMISSION = "REPERMISSION", "Repermission ask due"
    REPERMISSION_NOT_DUE = "REPERMISSION_NOT_DUE", "Repermission not due"
    SERVICE = "SERVICE", "Service message"
    OPTED_OUT = "OPTED_OUT", "Opted out"
    PAUSED = "PAUSED", "Paused"
    OPT_IN = "OPT_IN", "Valid consent"
    GENERIC_ADDRESS = "GENERIC_ADDRESS", "Generic company address"
    LEGITIMATE_INTEREST = "LEGITIMATE_INTEREST", "Postal, legitimate interest"
    B2B_PROFESSIONAL = "B2B_PROFESSIONAL", "Professional, related to their profession"
    CONTRACT_IN_PROGRESS = "CONTRACT_IN_PROGRESS", "Contract in progress"
    CALLBACK_REQUESTED = "CALLBACK_REQUESTED", "Callback requested"
    SOFT_OPT_IN = "SOFT_OPT_IN", "Customer, analogous products"
    ALREADY_BOUGHT_PRODUCT = "ALREADY_BOUGHT_PRODUCT", "Already bought the product"
    CONSENT_PENDING = "CONSENT_PENDING", "Confirmation pending"
    INVALID_CONSENT = "INVALID_CONSENT", "Invalid consent"
    NOT_INFORMED = "NOT_INFORMED", "Not informed at collection"
    NOT_PROFESSIONAL_RELEVANT = "NOT_PROFESSIONAL_RELEVANT", "Not relevant to the profession"
    NOT_ANALOGOUS = "NOT_ANALOGOUS", "Nothing analogous bought"
    NO_CONSENT = "NO_CONSENT", "No consent"
    # Not in RULES.md: Assent's own choice for a topic the company retired (docs/rules.md).
    TOPIC_RETIRED = "TOPIC_RETIRED", "Topic retired: nothing is sent for it"


REASONS: tuple[str, ...] = tuple(Reason.values)
