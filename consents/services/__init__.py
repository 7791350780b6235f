"""The only code that writes consent facts: the system of record's public write API.

One function per kind of fact, keyword-only and typed. Each validates everything before writing
(``consents.validation``, the rules written once); a bad value raises ``ValidationError`` naming the
field, and nothing is written. Appends take a row lock on the contact, chain the event to the
contact's previous one and rewrite the contact's projections, all in one transaction
(``writing``).

Callers write ``from consents import services`` and ``services.consent_grant(...)``: every public
function is re-exported here. By concern: ``addresses`` (normalising), ``contacts``, ``consents``
(consent facts), ``commerce`` (purchases, contracts, deliveries), ``catalog`` (topics, notices,
categories), ``erasure`` (suppression list, erasure), ``access`` (the access log), ``writing``
(the ledger writer they share).
"""

from __future__ import annotations

from consents.services.access import access_log
from consents.services.addresses import (
    EMAIL_MAX_LENGTH,
    FIRST_NAME_MAX_LENGTH,
    address_lock,
    normalize_email,
    normalize_first_name,
    normalize_phone,
)
from consents.services.catalog import (
    category_set,
    notice_draft_create,
    notice_draft_publish,
    notice_draft_update,
    notice_publish,
    topic_create,
)
from consents.services.commerce import (
    address_change_record,
    bounce_record,
    contract_end,
    contract_start,
    interaction_record,
    purchase_record,
)
from consents.services.consents import (
    callback_request,
    complaint_record,
    consent_confirm,
    consent_grant,
    consent_withdraw,
    marketing_pause,
    marketing_resume,
    repermission_record,
)
from consents.services.contacts import (
    POSTAL_ADDRESS_MAX_LENGTH,
    address_taken,
    contact_create,
    contact_email_change,
    contact_find,
    contact_get_or_create,
    contact_ids_reserved,
    contact_phone_change,
    contact_postal_address_set,
    contact_revoke_links,
    contact_update_details,
    contact_with_email,
    email_change_request,
)
from consents.services.erasure import (
    SUPPRESSED_CHANNELS,
    SUPPRESSION_CHECKED_METHODS,
    SUPPRESSION_POINT,
    address_is_suppressed,
    contact_erase,
    evidence_erase,
    is_suppressed,
    suppression_digest,
    suppression_listed,
    suppression_record,
)
from consents.services.recording import RECORDERS, event_record
from consents.services.writing import (
    BatchItem,
    Proof,
    append_batch,
    chain_end_asked,
    chain_end_later,
)

__all__ = [
    "EMAIL_MAX_LENGTH",
    "FIRST_NAME_MAX_LENGTH",
    "POSTAL_ADDRESS_MAX_LENGTH",
    "RECORDERS",
    "SUPPRESSED_CHANNELS",
    "SUPPRESSION_CHECKED_METHODS",
    "SUPPRESSION_POINT",
    "BatchItem",
    "Proof",
    "access_log",
    "address_change_record",
    "address_is_suppressed",
    "address_lock",
    "append_batch",
    "chain_end_asked",
    "chain_end_later",
    "bounce_record",
    "callback_request",
    "category_set",
    "complaint_record",
    "consent_confirm",
    "consent_grant",
    "consent_withdraw",
    "contact_create",
    "contact_email_change",
    "email_change_request",
    "event_record",
    "contact_erase",
    "contact_find",
    "contact_get_or_create",
    "contact_ids_reserved",
    "address_taken",
    "contact_with_email",
    "contact_phone_change",
    "contact_postal_address_set",
    "contact_revoke_links",
    "contact_update_details",
    "contract_end",
    "contract_start",
    "evidence_erase",
    "interaction_record",
    "is_suppressed",
    "marketing_pause",
    "marketing_resume",
    "normalize_email",
    "normalize_first_name",
    "normalize_phone",
    "notice_draft_create",
    "notice_draft_publish",
    "notice_draft_update",
    "notice_publish",
    "purchase_record",
    "repermission_record",
    "suppression_digest",
    "suppression_listed",
    "suppression_record",
    "topic_create",
]
