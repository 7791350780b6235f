"""The shapes of the API: every request and answer, so that the OpenAPI schema is exact."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from consents import validation
from consents.vocab import (
    CHANNELS,
    EVENT_TYPES,
    METHODS,
    PURPOSES,
    REASONS,
    ContactKind,
    Doi,
    InteractionKind,
)

MAX_BATCH = 1000
LANGUAGES = ("en", "fr")
# As the admin's decision panel: retention periods and link lifetimes are added to an instant, so
# it stays clear of the calendar's ends.
YEARS = (1970, 2100)


class InstantField(serializers.DateTimeField):
    """An ISO 8601 instant between 1970 and 2100 (without an offset: UTC)."""

    def to_internal_value(self, value: Any) -> Any:
        at = super().to_internal_value(value)
        if not YEARS[0] <= at.year <= YEARS[1]:
            raise serializers.ValidationError(
                f"Give an instant between the years {YEARS[0]} and {YEARS[1]}."
            )
        return at


# --- Problems -----------------------------------------------------------------------------------


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="Dotted path of the field at fault ('' for the whole).")
    pointer = serializers.CharField(help_text="JSON pointer into the request body.")
    detail = serializers.CharField()
    code = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details (``application/problem+json``)."""

    type = serializers.CharField(help_text="Stable URI of the kind of error.")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    instance = serializers.CharField(required=False)
    field = serializers.CharField(required=False, help_text="The first field at fault.")
    errors = FieldErrorSerializer(many=True, required=False)


# --- Decisions ----------------------------------------------------------------------------------


class ContactRefSerializer(serializers.Serializer):
    """The person: exactly one of their public id, email address or phone number."""

    id = serializers.CharField(required=False, max_length=32, help_text="Public id.")
    email = serializers.CharField(required=False, max_length=254)
    phone = serializers.CharField(required=False, max_length=32, help_text="E.164 or national.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [k for k in ("id", "email", "phone") if attrs.get(k)]
        if len(given) != 1:
            raise serializers.ValidationError("Give exactly one of id, email or phone.")
        return attrs


class MessageSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=CHANNELS)
    purpose = serializers.ChoiceField(choices=PURPOSES)
    topic = serializers.CharField(required=False, allow_null=True, max_length=64)
    category = serializers.CharField(required=False, allow_null=True, max_length=64)
    product = serializers.CharField(required=False, allow_null=True, max_length=128)
    professions = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=100
    )
    automated = serializers.BooleanField(required=False, default=False)
    contains_promotion = serializers.BooleanField(required=False, default=False)


class QuestionSerializer(serializers.Serializer):
    contact = ContactRefSerializer()
    message = MessageSerializer()
    as_of = InstantField(required=False, help_text="Default: now.")
    language = serializers.ChoiceField(choices=LANGUAGES, default="en")


class DecisionsRequestSerializer(serializers.Serializer):
    questions = QuestionSerializer(many=True, min_length=1, max_length=MAX_BATCH)


def _text(value: Any, max_length: int) -> bool:
    """What a CharField would take unchanged: a non-blank string, trimmed, without NUL."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= max_length
        and value == value.strip()
        and "\x00" not in value
    )


_OPTIONAL_TEXT = {"topic": 64, "category": 64, "product": 128}


def _fast_question(q: Any) -> dict[str, Any] | None:
    from django.utils.dateparse import parse_datetime

    if not isinstance(q, dict):
        return None
    contact, message = q.get("contact"), q.get("message")
    if not isinstance(contact, dict) or not isinstance(message, dict):
        return None
    given = [k for k in ("id", "email", "phone") if contact.get(k)]
    limits = {"id": 32, "email": 254, "phone": 32}
    if len(given) != 1 or not _text(contact[given[0]], limits[given[0]]):
        return None
    if any(k in contact and k not in given for k in limits):
        return None
    if message.get("channel") not in CHANNELS or message.get("purpose") not in PURPOSES:
        return None
    m: dict[str, Any] = {"channel": message["channel"], "purpose": message["purpose"]}
    for name, limit in _OPTIONAL_TEXT.items():
        value = message.get(name)
        if value is not None and not _text(value, limit):
            return None
        m[name] = value
    professions = message.get("professions", [])
    if not isinstance(professions, list) or len(professions) > 100:
        return None
    if not all(_text(p, 64) for p in professions):
        return None
    m["professions"] = professions
    for name in ("automated", "contains_promotion"):
        value = message.get(name, False)
        if not isinstance(value, bool):
            return None
        m[name] = value
    out: dict[str, Any] = {"contact": {given[0]: contact[given[0]]}, "message": m}
    language = q.get("language", "en")
    if language not in LANGUAGES:
        return None
    out["language"] = language
    if "as_of" in q:
        at = parse_datetime(q["as_of"]) if isinstance(q["as_of"], str) else None
        if at is None or at.tzinfo is None or not YEARS[0] <= at.year <= YEARS[1]:
            return None
        out["as_of"] = at
    return out


def fast_questions(data: Any) -> list[dict[str, Any]] | None:
    """The questions of a well-formed request, read without DRF's per-field machinery (which
    costs most of a 1,000-question request); ``None`` when anything is unusual, and the
    serializer then reads it and names what is wrong. Accepts nothing the serializer refuses."""
    if not isinstance(data, dict):
        return None
    questions = data.get("questions")
    if not isinstance(questions, list) or not 1 <= len(questions) <= MAX_BATCH:
        return None
    out = []
    for q in questions:
        read = _fast_question(q)
        if read is None:
            return None
        out.append(read)
    return out


class DecisionSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the question in the request.")
    contact = serializers.CharField(allow_null=True, help_text="Public id; null if not found.")
    allowed = serializers.BooleanField()
    reason = serializers.ChoiceField(choices=[*REASONS, "UNKNOWN_CONTACT"])
    step = serializers.CharField(help_text="The step of RULES.md that decided.")
    explanation = serializers.CharField()
    events = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Ledger sequence numbers (per contact) of the events the answer rests on.",
    )
    as_of = serializers.DateTimeField()


class DecisionsResponseSerializer(serializers.Serializer):
    decisions = DecisionSerializer(many=True)


# --- Events -------------------------------------------------------------------------------------

EVENT_KINDS = (
    "opt_in",
    "opt_out",
    "purchase",
    "contract_start",
    "contract_end",
    "interaction",
    "callback_request",
    "pause",
    "resume",
    "address_change",
)


class EventContactSerializer(ContactRefSerializer):
    """Found by id, or found or created by email or phone."""

    locale = serializers.ChoiceField(choices=LANGUAGES, required=False, help_text="On creation.")
    kind = serializers.ChoiceField(choices=ContactKind.values, required=False)
    informed_at_collection = serializers.BooleanField(
        required=False, help_text="On creation: the person was told how their data is used."
    )


class EvidenceSerializer(serializers.Serializer):
    ip_address = serializers.IPAddressField(required=False, allow_null=True)
    user_agent = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    details = serializers.DictField(required=False)


@extend_schema_serializer(component_name="EventIn")
class EventInSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=EVENT_KINDS)
    contact = EventContactSerializer()
    occurred_at = InstantField(required=False, help_text="Default: now.")
    topic = serializers.CharField(required=False, max_length=64, help_text="opt_in, opt_out.")
    channel = serializers.CharField(required=False, max_length=8)
    method = serializers.ChoiceField(choices=METHODS, required=False, help_text="Default: api.")
    proof_reference = serializers.CharField(required=False, allow_blank=True, max_length=500)
    collection_point = serializers.CharField(required=False, allow_blank=True, max_length=500)
    notice_version = serializers.IntegerField(required=False, min_value=1)
    notice_language = serializers.ChoiceField(choices=LANGUAGES, required=False)
    evidence = EvidenceSerializer(required=False)
    doi = serializers.ChoiceField(choices=Doi.values, required=False)
    frequency = serializers.CharField(required=False, allow_blank=True, max_length=32)
    automated = serializers.BooleanField(required=False)
    category = serializers.CharField(required=False, allow_blank=True, max_length=64)
    product = serializers.CharField(required=False, allow_blank=True, max_length=128)
    warranty_until = InstantField(required=False)
    contract = serializers.CharField(required=False, max_length=128)
    kind = serializers.ChoiceField(choices=InteractionKind.values, required=False)
    until = InstantField(required=False, help_text="pause: until when.")

    REQUIRED = {
        "opt_in": ("topic", "channel", "method"),
        # What a commercial fact must name: the ledger's rule (``consents.validation``).
        **{str(kind): names for kind, names in validation.REQUIRED_DATA.items()},
        "interaction": ("kind",),
        "pause": ("channel", "until"),
        "resume": ("channel",),
        "address_change": ("channel",),
    }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        missing = {
            name: "Required for this type."
            for name in self.REQUIRED.get(attrs["type"], ())
            if attrs.get(name) in (None, "")
        }
        if missing:
            raise serializers.ValidationError(missing)
        return attrs


class EventsRequestSerializer(serializers.Serializer):
    events = serializers.ListField(
        child=serializers.DictField(), min_length=1, max_length=MAX_BATCH,
        help_text="Up to 1,000 EventIn objects, recorded in order; each is answered on its own.",
    )  # fmt: skip


class RecordedEventSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    type = serializers.ChoiceField(choices=EVENT_TYPES)
    hash = serializers.CharField()


class EventResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["recorded", "refused"])
    contact = serializers.CharField(allow_null=True)
    contact_created = serializers.BooleanField()
    events = RecordedEventSerializer(many=True)
    problem = ProblemSerializer(allow_null=True)


class EventsResponseSerializer(serializers.Serializer):
    results = EventResultSerializer(many=True)
    recorded = serializers.IntegerField()
    refused = serializers.IntegerField()


# --- Contacts -----------------------------------------------------------------------------------


class AddressesSerializer(serializers.Serializer):
    email = serializers.CharField(allow_null=True)
    phone = serializers.CharField(allow_null=True)
    postal_address = serializers.CharField(allow_null=True)
    push_token = serializers.CharField(allow_null=True)


class StateSerializer(serializers.Serializer):
    topic = serializers.CharField()
    channel = serializers.ChoiceField(choices=CHANNELS)
    purpose = serializers.ChoiceField(choices=PURPOSES)
    status = serializers.CharField(help_text="The stored consent state ('' when none).")
    allowed = serializers.BooleanField()
    reason = serializers.ChoiceField(choices=REASONS)
    step = serializers.CharField()
    basis = serializers.CharField(help_text="The reason in plain words.")
    events = serializers.ListField(child=serializers.IntegerField())


class ContactSerializer(serializers.Serializer):
    id = serializers.CharField()
    kind = serializers.ChoiceField(choices=ContactKind.values)
    locale = serializers.ChoiceField(choices=LANGUAGES)
    first_name = serializers.CharField(allow_blank=True)
    addresses = AddressesSerializer()
    collected_at = serializers.DateTimeField()
    informed_at_collection = serializers.BooleanField()
    profession = serializers.CharField(allow_blank=True)
    erased_at = serializers.DateTimeField(allow_null=True)
    state = StateSerializer(many=True)


class EventOutSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    type = serializers.ChoiceField(choices=EVENT_TYPES)
    topic = serializers.CharField(allow_blank=True)
    channel = serializers.CharField(allow_blank=True)
    occurred_at = serializers.DateTimeField()
    recorded_at = serializers.DateTimeField()
    method = serializers.CharField(allow_blank=True)
    actor = serializers.CharField()
    collection_point = serializers.CharField(allow_blank=True)
    notice = serializers.IntegerField(allow_null=True)
    proof = serializers.CharField(allow_blank=True)
    data = serializers.DictField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField()


class EventPageSerializer(serializers.Serializer):
    events = EventOutSerializer(many=True)
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Pass as `cursor` for the next page; null at the end."
    )


class ReceiptSignatureSerializer(serializers.Serializer):
    alg = serializers.ChoiceField(choices=["EdDSA"])
    kid = serializers.CharField()
    value = serializers.CharField(help_text="base64url Ed25519 signature of the canonical JSON.")


class SignedReceiptSerializer(serializers.Serializer):
    receipt = serializers.DictField(help_text="ISO/IEC TS 27560 fields (see the docs).")
    signature = ReceiptSignatureSerializer()


class ReceiptsSerializer(serializers.Serializer):
    receipts = SignedReceiptSerializer(many=True)
    key_url = serializers.CharField(help_text="Where the public key (JWK) is published.")


class JwkSerializer(serializers.Serializer):
    kty = serializers.CharField()
    crv = serializers.CharField()
    alg = serializers.CharField()
    use = serializers.CharField()
    kid = serializers.CharField()
    x = serializers.CharField()


class LinksSerializer(serializers.Serializer):
    unsubscribe_url = serializers.URLField(help_text="RFC 8058 one-click target, and a page.")
    preferences_url = serializers.URLField()
    headers = serializers.DictField(
        child=serializers.CharField(), help_text="List-Unsubscribe and List-Unsubscribe-Post."
    )


class ErasureRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=2000, help_text="A ticket reference: no personal data."
    )


class ErasureSerializer(serializers.Serializer):
    contact = serializers.CharField()
    erased_at = serializers.DateTimeField()
    suppressed = serializers.IntegerField()


# --- Catalogue ----------------------------------------------------------------------------------


class TopicSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.DictField(child=serializers.CharField())
    description = serializers.DictField(child=serializers.CharField())
    purpose = serializers.ChoiceField(choices=PURPOSES)
    channels = serializers.ListField(child=serializers.ChoiceField(choices=CHANNELS))
    frequencies = serializers.ListField(child=serializers.CharField())
    active = serializers.BooleanField()


class TopicsSerializer(serializers.Serializer):
    topics = TopicSerializer(many=True)


class NoticeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    topic = serializers.CharField(allow_null=True)
    language = serializers.ChoiceField(choices=LANGUAGES)
    version = serializers.IntegerField()
    text = serializers.CharField()
    sha256 = serializers.CharField()
    published_at = serializers.DateTimeField()


class NoticesSerializer(serializers.Serializer):
    notices = NoticeSerializer(many=True)


# --- Imports and webhooks -----------------------------------------------------------------------


class ImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField(help_text=".csv or .xlsx")
    preset = serializers.ChoiceField(choices=["mailchimp", "brevo", "assent"])
    topic = serializers.CharField(required=False, allow_blank=True, max_length=64)
    webhooks = serializers.BooleanField(required=False, default=False)
    locale = serializers.ChoiceField(choices=LANGUAGES, required=False, default="fr")


class ImportSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    preset = serializers.CharField()
    topic = serializers.CharField(allow_null=True)
    file_sha256 = serializers.CharField()
    webhooks = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    rows = serializers.IntegerField()
    counts = serializers.DictField()
    issues = serializers.ListField(child=serializers.JSONField())
    error = serializers.CharField(allow_null=True)


class EndpointInSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=500)
    event_types = serializers.ListField(child=serializers.CharField(), required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=200)
    active = serializers.BooleanField(required=False, default=True)


class EndpointPatchSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=500, required=False)
    event_types = serializers.ListField(child=serializers.CharField(), required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=200)
    active = serializers.BooleanField(required=False)


class EndpointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    event_types = serializers.ListField(child=serializers.CharField())
    active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    failing_since = serializers.DateTimeField(allow_null=True)
    disabled_reason = serializers.CharField(allow_null=True)
    secret_rotated_until = serializers.DateTimeField(allow_null=True)


class EndpointWithSecretSerializer(EndpointSerializer):
    secret = serializers.CharField(help_text="whsec_…: shown once.")


class EndpointsSerializer(serializers.Serializer):
    endpoints = EndpointSerializer(many=True)


class ReplayRequestSerializer(serializers.Serializer):
    start = InstantField()
    end = InstantField()


class ReplaySerializer(serializers.Serializer):
    queued = serializers.IntegerField()
