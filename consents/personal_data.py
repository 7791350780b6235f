"""Where a person's data lives, field by field, and what erasure does with each.

Every field of every model of this project is listed here with its rule: ``wiped`` (erasure
empties it), ``deleted`` (erasure deletes the row) or ``kept: <why>``. A test walks the models and
fails on a field missing from this table, so that a new field cannot hold personal data unnoticed;
another erases a person and checks every ``wiped`` and ``deleted`` rule against the database.

What erasure does is ``services.contact_erase`` (the contact, its evidence, its outbox rows) and,
through ``signals.contact_erased``, the other apps (``preferences.erasure``: sign-ups waiting for a
click, preference-center sessions, the rendered page, the mail files of the embedded default).
Free text typed by staff (the erasure's reason, access-log details) is kept: the erasure form
says so and asks for a reference, never personal data.
"""

from __future__ import annotations

WIPED = "wiped"
DELETED = "deleted"


def kept(why: str) -> str:
    return f"kept: {why}"


KEY = kept("a row's own key, a number")
LINK = kept("a reference to another row")
WHEN = kept("an instant of the record, not of a person")
CATALOG = kept("the catalog: topics, notices, categories and stores, nobody's data")
LEDGER = kept(
    "the ledger, never changed: facts about consent (what, when, how, by whom: a staff member, "
    "the system, an integration, or 'person'), no address, name or evidence (those are beside "
    "it, in Evidence); its hash chain must still verify"
)
PROJECTION = kept("derived from the ledger and recomputed from it")
STAFF = kept("about staff accounts, stores and tablets, not about the people who consent")
STAFF_TEXT = kept(
    "free text typed by staff; the erasure form warns not to type personal data there"
)

INVENTORY: dict[str, str] = {
    # --- The catalog ------------------------------------------------------------------------
    **{
        f"consents.Topic.{name}": CATALOG
        for name in (
            "id",
            "slug",
            "name_fr",
            "name_en",
            "description_fr",
            "description_en",
            "purpose",
            "channels",
            "frequencies",
            "display_order",
            "active",
        )
    },  # fmt: skip
    **{
        f"consents.Notice.{name}": CATALOG
        for name in (
            "id",
            "topic",
            "language",
            "version",
            "text",
            "sha256",
            "published_at",
            "created_at",
        )
    },  # fmt: skip
    **{
        f"consents.Category.{name}": CATALOG for name in ("id", "slug", "family", "name", "name_en")
    },
    **{f"consents.Store.{name}": CATALOG for name in ("id", "code", "name", "address")},
    # --- The person -------------------------------------------------------------------------
    "consents.Contact.id": KEY,
    "consents.Contact.public_id": kept(
        "a random identifier, how the erasure record and the ledger name the erased contact"
    ),
    "consents.Contact.kind": kept("consumer or professional: nothing that identifies anyone"),
    "consents.Contact.email": WIPED,
    "consents.Contact.phone": WIPED,
    "consents.Contact.first_name": WIPED,
    "consents.Contact.postal_address": WIPED,
    "consents.Contact.push_token": WIPED,
    "consents.Contact.locale": kept("fr or en"),
    "consents.Contact.collected_at": kept("when the record began, which the rules date from"),
    "consents.Contact.informed_at_collection": kept("a yes or no the rules read"),
    "consents.Contact.profession": WIPED,
    "consents.Contact.link_version": kept("a counter; erasure raises it so every link dies"),
    "consents.Contact.created_at": WHEN,
    # --- The ledger and the evidence beside it ---------------------------------------------
    **{
        f"consents.Event.{name}": LEDGER
        for name in (
            "id",
            "contact",
            "seq",
            "type",
            "topic",
            "channel",
            "occurred_at",
            "recorded_at",
            "method",
            "actor",
            "collection_point",
            "store",
            "notice",
            "proof",
            "data",
            "evidence_digest",
            "prev_hash",
            "hash",
        )
    },  # fmt: skip
    "consents.Evidence.event": LINK,
    "consents.Evidence.ip_address": WIPED,
    "consents.Evidence.user_agent": WIPED,
    "consents.Evidence.details": WIPED,
    # The key of the event's evidence digest: wiped with the evidence, the digest can no longer be
    # matched to a guessed address.
    "consents.Evidence.salt": WIPED,
    # --- Chain heads and anchors: positions and hashes, nothing personal ------------------------
    "consents.ChainHead.contact": LINK,
    "consents.ChainHead.seq": kept("a position in the chain"),
    "consents.ChainHead.hash": kept("a hash of events that hold no personal data"),
    "consents.ChainHead.recorded_at": WHEN,
    **{
        f"consents.LedgerAnchor.{name}": kept("a signed summary of every chain's head")
        for name in (
            "at",
            "bucket_size",
            "buckets",
            "chains",
            "created_at",
            "events",
            "key_id",
            "previous",
            "root",
            "signature",
        )
    },  # fmt: skip
    "consents.LedgerAnchor.id": KEY,
    # --- Second-factor enrolment links of staff accounts ------------------------------------
    **{
        f"consents.EnrolmentLink.{name}": STAFF
        for name in ("user", "created_by", "token_sha256", "created_at", "expires_at", "used_at")
    },
    "consents.EnrolmentLink.id": KEY,
    "consents.Evidence.erased_at": kept("when the evidence was wiped"),
    # --- Projections ------------------------------------------------------------------------
    **{
        f"consents.ContactFacts.{name}": PROJECTION
        for name in (
            "contact",
            "is_customer",
            "retention_anchor",
            "expires_at",
            "undeliverable_email",
            "generic_email",
            "repermission_asked",
            "callback_until",
            "fold",
            "last_seq",
            "rules_fingerprint",
        )
    },  # fmt: skip
    **{
        f"consents.ChannelState.{name}": PROJECTION
        for name in (
            "id",
            "contact",
            "channel",
            "opted_out",
            "callback_lifts",
            "pause_until",
            "repermission_opted_out",
            "has_valid_consent",
        )
    },  # fmt: skip
    **{
        f"consents.ConsentState.{name}": PROJECTION
        for name in (
            "id",
            "contact",
            "topic",
            "channel",
            "status",
            "since",
            "frequency",
            "automated",
            "callback_lifts",
        )
    },  # fmt: skip
    **{
        f"consents.CatalogFact.{name}": PROJECTION
        for name in ("id", "contact", "kind", "category", "product", "contract", "active")
    },  # fmt: skip
    # --- The outbox: the proof of what was sent ---------------------------------------------
    "consents.Outbox.id": KEY,
    "consents.Outbox.contact": LINK,
    "consents.Outbox.template": kept("which email, by its template's name"),
    "consents.Outbox.to": WIPED,
    "consents.Outbox.language": kept("fr or en"),
    "consents.Outbox.context": WIPED,
    # What the email's links were for (scope and parameters), never the links themselves.
    "consents.Outbox.links": WIPED,
    "consents.Outbox.message_id": kept("the Message-ID we generated for the email"),
    "consents.Outbox.next_attempt_at": WHEN,
    "consents.Outbox.queued_at": WHEN,
    "consents.Outbox.is_service": kept("a yes or no"),
    "consents.Outbox.status": kept("sent, failed, or cancelled (erasure cancels what is pending)"),
    "consents.Outbox.attempts": kept("a count"),
    "consents.Outbox.created_at": WHEN,
    "consents.Outbox.sent_at": WHEN,
    "consents.Outbox.provider_message_id": kept(
        "the email service's reference: the proof that the message left, no address"
    ),
    "consents.Outbox.last_error": WIPED,
    # --- Compliance records -----------------------------------------------------------------
    "consents.AccessLog.id": KEY,
    "consents.AccessLog.at": WHEN,
    "consents.AccessLog.user": kept("the staff member who looked"),
    "consents.AccessLog.username": kept("the staff member who looked, or 'person'"),
    "consents.AccessLog.action": kept("what was done: a code"),
    "consents.AccessLog.contact": LINK,
    "consents.AccessLog.detail": STAFF_TEXT,
    "consents.Erasure.id": KEY,
    "consents.Erasure.contact": LINK,
    "consents.Erasure.erased_at": WHEN,
    "consents.Erasure.actor": kept("the staff member or job that erased"),
    "consents.Erasure.reason": STAFF_TEXT,
    "consents.Erasure.suppressed": kept("a count"),
    "consents.Suppression.id": KEY,
    "consents.Suppression.digest": kept(
        "a keyed hash (HMAC) of an opted-out address, useless without the deployment's key: "
        "how an erased address comes back opted out"
    ),
    "consents.Suppression.kind": kept("email or phone"),
    "consents.Suppression.created_at": WHEN,
    "consents.Suppression.reason": kept("a code"),
    **{
        f"consents.ReconfirmCampaign.{name}": kept("a campaign of the catalog, run by staff")
        for name in ("id", "notice", "started_at", "started_by", "finished_at")
    },
    **{
        f"consents.ReconfirmRequest.{name}": kept(
            "that a contact was asked to re-confirm, and when: the proof of the ask, no address"
        )
        for name in ("id", "campaign", "contact", "channel", "created_at", "confirmed_at")
    },
    # --- Events out: webhook endpoints and their deliveries -------------------------------------
    **{
        f"consents.WebhookEndpoint.{name}": kept(
            "the configuration of a receiving system, set by staff (its URL, the secret it shares "
            "with Assent): nobody's data"
        )
        for name in (
            "id",
            "url",
            "description",
            "event_types",
            "active",
            "secret",
            "previous_secret",
            "previous_secret_until",
            "created_at",
            "failing_since",
            "disabled_reason",
        )
    },  # fmt: skip
    "consents.WebhookDelivery.id": KEY,
    "consents.WebhookDelivery.endpoint": LINK,
    "consents.WebhookDelivery.contact": LINK,
    "consents.WebhookDelivery.message_id": kept("the webhook-id we generated for the message"),
    "consents.WebhookDelivery.type": kept("which event type: a code"),
    "consents.WebhookDelivery.sequence": kept("a position in the contact's chain"),
    "consents.WebhookDelivery.payload": kept(
        "the thin message: the contact's public id, its sequence, topic, channel, method and "
        "instants; never an address (that is in ``email``, wiped)"
    ),
    # The address some types carry for the receiver to act on: never sent after erasure.
    "consents.WebhookDelivery.email": WIPED,
    **{
        f"consents.WebhookDelivery.{name}": WHEN
        for name in (
            "created_at",
            "next_attempt_at",
            "give_up_at",
            "last_attempt_at",
            "delivered_at",
        )
    },  # fmt: skip
    "consents.WebhookDelivery.status": kept("delivered, failed, pending or cancelled"),
    "consents.WebhookDelivery.attempts": kept("a count"),
    "consents.WebhookDelivery.response_status": kept("the receiver's HTTP status"),
    "consents.WebhookDelivery.latency_ms": kept("how long the receiver took to answer"),
    "consents.WebhookDelivery.last_error": kept(
        "what the receiver or the network answered (a status, a timeout): no person's data"
    ),
    # --- History in: imports ----------------------------------------------------------------
    **{
        f"consents.ImportRun.{name}": kept(
            "an import run by staff: the file's name and hash, counts, and refused rows by row "
            "number and reason, never an address"
        )
        for name in (
            "id",
            "preset",
            "topic",
            "filename",
            "file_sha256",
            "status",
            "actor",
            "webhooks",
            "created_at",
            "finished_at",
            "rows",
            "counts",
            "report",
            "error",
        )
    },  # fmt: skip
    # Which source row made the contact (a keyed hash of its id or address): an erased person's
    # rows go, and a re-import of the same file finds them new (the suppression list still keeps
    # an address that opted out from coming back as consenting).
    **{
        f"consents.ImportedRow.{name}": DELETED
        for name in (
            "id",
            "run",
            "row",
            "contact",
            "source",
            "key_digest",
            "content_digest",
            "proven",
        )
    },  # fmt: skip
    # --- The preference center --------------------------------------------------------------
    **{
        f"preferences.PendingSignup.{name}": DELETED
        for name in (
            "id",
            "contact",
            "nonce",
            "choices",
            "first_name",
            "phone",
            "locale",
            "source",
            "created_at",
            "expires_at",
            "confirmed_at",
        )
    },  # fmt: skip
    **{
        f"preferences.CenterSession.{name}": DELETED
        for name in ("id", "contact", "session_key", "created_at")
    },
    # --- Stores: staff, tablets, captures ---------------------------------------------------
    **{f"preferences.StoreMembership.{name}": STAFF for name in ("id", "user", "store")},
    **{
        f"preferences.Device.{name}": STAFF
        for name in ("id", "store", "name", "secret", "enrolled_by", "enrolled_at", "revoked_at")
    },
    **{
        f"preferences.Capture.{name}": kept(
            "a capture's idempotency key, who captured, when, and the ids of the events it "
            "recorded: never what the person typed"
        )
        for name in ("id", "key", "kind", "device", "user", "created_at", "result", "scope")
    },
    # A keyed hash of what was typed (addresses included), only to recognise a retry of the same
    # capture: wiped by the hourly purge once a day has passed (``captures_forget``).
    "preferences.Capture.digest": kept(
        "a keyed hash of a capture's details, useless without the deployment's key, wiped after "
        "a day"
    ),
    # "Send me my link": handled (and deleted) seconds after the request; an erasure deletes
    # any still waiting for the person's address.
    **{
        f"preferences.LinkRequest.{name}": DELETED
        for name in ("id", "email", "language", "created_at")
    },
    # --- The integration API ------------------------------------------------------------------
    **{
        f"api.ApiKey.{name}": kept("about the systems that call the API, not about people")
        for name in (
            "id",
            "name",
            "prefix",
            "digest",
            "scopes",
            "allowed_networks",
            "rate_per_minute",
            "created_at",
            "created_by",
            "last_used_at",
            "revoked_at",
        )
    },  # fmt: skip
    **{
        f"api.IdempotentRequest.{name}": kept(
            "the answer to an API write, replayed for a day then purged: ids and outcomes "
            "(public ids, ledger sequences), never an address (the events endpoint echoes none)"
        )
        for name in (
            "id",
            "api_key",
            "key",
            "fingerprint",
            "status",
            "response_status",
            "response_type",
            "response_body",
            "created_at",
        )
    },  # fmt: skip
    # Email-service tracking events: in the inbox from the webhook's answer until the drain
    # moves them into the ledger (seconds); an erasure deletes any still waiting for the address.
    **{
        f"preferences.TrackingInbox.{name}": DELETED
        for name in (
            "id",
            "received_at",
            "esp",
            "event_type",
            "fact",
            "recipient",
            "reference",
            "occurred_at",
            "hard",
            "message",
            "raw",
        )
    },  # fmt: skip
    # Opens counted per message and day: nobody's.
    **{
        f"preferences.OpenCount.{name}": kept("a count of opens per message and day, nobody's")
        for name in ("id", "day", "message", "opens")
    },
}

# The project's apps whose models the inventory covers.
APPS = ("consents", "preferences", "api")
