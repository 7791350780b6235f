"""The system of record: contacts, topics, notices, the catalog, the ledger and its projections.

Nothing here holds business logic: every write goes through ``consents.services``.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models.functions import Now, Upper
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from consents.vocab import (
    Channel,
    ContactKind,
    EventType,
    Method,
)

LANGUAGES = [("fr", "Français"), ("en", "English")]


def new_public_id() -> str:
    # 128 random bits; URLs and exports name contacts by this, never by the primary key.
    return secrets.token_urlsafe(16)


class Topic(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name_fr = models.CharField(max_length=200)
    name_en = models.CharField(max_length=200)
    description_fr = models.TextField(blank=True)
    description_en = models.TextField(blank=True)
    purpose = models.CharField(max_length=32)
    channels = models.JSONField(default=list, help_text="Channels this topic is offered on.")
    frequencies = models.JSONField(
        default=list, blank=True, help_text='Frequency choices, e.g. ["weekly", "monthly"].'
    )
    display_order = models.PositiveIntegerField(default=0)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["display_order", "slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def name(self) -> str:
        return self.name_en if (get_language() or "").startswith("en") else self.name_fr

    @property
    def description(self) -> str:
        en = (get_language() or "").startswith("en")
        return self.description_en if en else self.description_fr


class Notice(models.Model):
    """A version of the wording shown when consent is collected. Immutable once published."""

    topic = models.ForeignKey(
        Topic,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="notices",
        help_text="Empty for a notice that applies to every topic.",
    )
    language = models.CharField(max_length=2, choices=LANGUAGES)
    version = models.PositiveIntegerField()
    text = models.TextField()
    sha256 = models.CharField(max_length=64, blank=True, editable=False)
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["topic", "language", "version"], name="notice_unique_version"
            ),
            models.UniqueConstraint(
                fields=["language", "version"],
                condition=models.Q(topic__isnull=True),
                name="global_notice_unique_version",
            ),
        ]
        ordering = ["topic__slug", "language", "-version"]

    def __str__(self) -> str:
        scope = self.topic.slug if self.topic_id else "global"
        return f"{scope} {self.language} v{self.version}"

    @property
    def is_published(self) -> bool:
        return self.published_at is not None


class Category(models.Model):
    """A product category of the catalog; categories sharing a family are analogous."""

    slug = models.SlugField(max_length=64, unique=True)
    family = models.SlugField(max_length=64)
    name = models.CharField(max_length=200, blank=True)
    name_en = models.CharField(
        max_length=200, blank=True, help_text="The name in English (the name above is in French)."
    )

    class Meta:
        ordering = ["family", "slug"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return f"{self.slug} ({self.family})"

    @property
    def label(self) -> str:
        """The name in the current language, else the other one, else the slug."""
        en = (get_language() or "").startswith("en")
        first, second = (self.name_en, self.name) if en else (self.name, self.name_en)
        return first or second or self.slug


class Store(models.Model):
    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    address = models.TextField(blank=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Contact(models.Model):
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    kind = models.CharField(
        max_length=16, choices=ContactKind.choices, default=ContactKind.CONSUMER
    )
    # Normalised (trimmed, domain lower-cased) and unique whatever the case of the local part,
    # which mailbox providers ignore in practice; absent is NULL so that uniqueness holds.
    email = models.CharField(max_length=254, null=True, blank=True)
    phone = models.CharField(max_length=16, blank=True, db_index=True, help_text="E.164")
    first_name = models.CharField(max_length=150, blank=True)
    postal_address = models.TextField(blank=True)
    push_token = models.CharField(max_length=255, blank=True)
    locale = models.CharField(max_length=2, choices=LANGUAGES, default="fr")
    collected_at = models.DateTimeField()
    informed_at_collection = models.BooleanField(default=False)
    profession = models.CharField(max_length=64, blank=True)
    link_version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        permissions = [
            ("export_contact", "Can export a contact's proof and data (access request)"),
            ("erase_contact", "Can erase a contact's personal data"),
            ("rectify_contact", "Can ask a contact to confirm a new email address"),
            ("run_retention", "Can run retention (repermission and erasure)"),
            ("view_dashboard", "Can view the dashboards"),
        ]
        constraints = [
            # Also the index behind ``email__iexact`` lookups on PostgreSQL (UPPER(email) = ...).
            models.UniqueConstraint(Upper("email"), name="contact_email_unique_ci"),
        ]

    def __str__(self) -> str:
        return self.email or self.phone or self.public_id


class Event(models.Model):
    """One fact in the append-only ledger, chained to the contact's previous event."""

    # No index of its own: the chain's unique (contact_id, seq) serves every lookup by contact,
    # and an index less is a write less per event.
    contact = models.ForeignKey(
        Contact, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    seq = models.PositiveIntegerField(help_text="Position in the contact's chain, from 1.")
    type = models.CharField(max_length=24, choices=EventType.choices)
    topic = models.CharField(max_length=64, blank=True, help_text='A topic slug, or "*".')
    channel = models.CharField(max_length=8, blank=True, help_text='A channel, or "*".')
    occurred_at = models.DateTimeField(help_text="When the fact happened.")
    recorded_at = models.DateTimeField(help_text="When the ledger recorded it.")
    method = models.CharField(max_length=24, blank=True, choices=Method.choices)
    actor = models.CharField(max_length=128, help_text='"person", "system", "staff:…", "api:…"')
    collection_point = models.CharField(max_length=500, blank=True)
    store = models.ForeignKey(Store, null=True, blank=True, on_delete=models.PROTECT)
    notice = models.ForeignKey(Notice, null=True, blank=True, on_delete=models.PROTECT)
    proof = models.CharField(
        max_length=500, blank=True, help_text="Reference to the original evidence."
    )
    data = models.JSONField(default=dict, blank=True, help_text="Fields proper to the type.")
    evidence_digest = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact", "seq"], name="event_chain_position"),
        ]
        # The dashboards count events per week of a type from these alone (index-only scans on
        # PostgreSQL), without reading the ledger's rows.
        indexes = [
            models.Index(
                fields=["type", "occurred_at"],
                include=["channel", "topic", "store", "method"],
                name="event_type_occurred_cover",
            ),
            models.Index(
                fields=["occurred_at"],
                include=["contact", "seq", "topic", "channel"],
                condition=models.Q(type="opt_in", data__doi="pending"),
                name="event_doi_pending",
            ),
            models.Index(
                fields=["contact", "topic", "channel", "seq"],
                include=["occurred_at"],
                condition=models.Q(type="doi_confirmed"),
                name="event_doi_confirmed",
            ),
            models.Index(
                fields=["occurred_at"],
                include=["channel"],
                condition=models.Q(type="bounce", data__hard=True),
                name="event_hard_bounce",
            ),
            # Opt-ins that renew a consent (a new frequency, a re-confirmation): the dashboards
            # take them off the new opt-ins.
            models.Index(
                fields=["occurred_at"],
                include=["channel", "topic", "store"],
                condition=models.Q(type="opt_in", data__renewal=True),
                name="event_opt_in_renewal",
            ),
        ]
        ordering = ["contact_id", "seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type} {self.topic}/{self.channel}"


class Evidence(models.Model):
    """Personal evidence for one event, kept beside it so that erasure can wipe it.

    The event's chain covers only ``Event.evidence_digest``: wiping this row keeps it valid.
    """

    event = models.OneToOneField(
        Event, on_delete=models.CASCADE, primary_key=True, related_name="evidence"
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    # The key of the event's keyed evidence digest (``ledger.evidence_digest``): random per
    # event, wiped with the evidence, after which the digest cannot be guessed back by trying
    # addresses. Empty on evidence recorded before digests were keyed (plain SHA-256).
    salt = models.CharField(max_length=64, blank=True)
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "evidence"

    def __str__(self) -> str:
        return f"evidence of event {self.event_id}"


class ChainHead(models.Model):
    """The last event of a contact's chain, as the ledger writer left it.

    Written in the transaction of every append (``services._append``, ``bulk.load``), so that a
    chain that lost its tail, or a chain deleted whole, no longer matches its head
    (``verify_ledger``). On PostgreSQL a trigger lets a head only move forward, to an event that
    exists, and refuses DELETE and TRUNCATE.
    """

    contact = models.OneToOneField(
        Contact, on_delete=models.PROTECT, primary_key=True, related_name="chain_head"
    )
    seq = models.PositiveIntegerField()
    hash = models.CharField(max_length=64)
    recorded_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"head of contact {self.contact_id}: #{self.seq}"


class LedgerAnchor(models.Model):
    """A signed digest of every chain head as of an instant (``consents.anchors``).

    Append-only like the ledger (a trigger on PostgreSQL), each anchor linked to the previous
    one by its digest, signed with ``LEDGER_ANCHOR_KEY``, which the database never holds: whoever
    can write to the database cannot rewrite history and recompute the hashes unnoticed.
    """

    at = models.DateTimeField(
        unique=True, help_text="The heads covered: each chain's last event recorded by then."
    )
    created_at = models.DateTimeField()
    chains = models.PositiveIntegerField()
    events = models.PositiveBigIntegerField()
    bucket_size = models.PositiveIntegerField(help_text="Contact ids per bucket.")
    buckets = models.JSONField(
        default=list, help_text="[first contact id, chains, events, root] per non-empty bucket."
    )
    root = models.CharField(max_length=64)
    previous = models.CharField(
        max_length=64, help_text="Digest of the previous anchor; 64 zeros for the first."
    )
    key_id = models.CharField(max_length=16, help_text="Names the signing key, never reveals it.")
    signature = models.CharField(max_length=64)

    class Meta:
        ordering = ["-at"]
        get_latest_by = "at"

    def __str__(self) -> str:
        return f"anchor #{self.pk} of {self.at:%Y-%m-%d %H:%M}"


# --- Projections: derived from the ledger in the same transaction as each append ----------------


class ContactFacts(models.Model):
    """Per-contact facts the rules need, with the instants they imply already computed."""

    contact = models.OneToOneField(
        Contact, on_delete=models.CASCADE, primary_key=True, related_name="facts"
    )
    is_customer = models.BooleanField(default=False)
    retention_anchor = models.DateTimeField(null=True, blank=True)
    # NULL: never expires (an active contract).
    expires_at = models.DateTimeField(null=True, blank=True)
    undeliverable_email = models.BooleanField(default=False)
    generic_email = models.BooleanField(default=False)
    # A repermission ask was sent since the last person-initiated event.
    repermission_asked = models.BooleanField(default=False)
    callback_until = models.DateTimeField(null=True, blank=True)
    last_seq = models.PositiveIntegerField(default=0)
    # The rules and settings these facts were computed under (``RuleSettings.fingerprint``).
    rules_fingerprint = models.CharField(max_length=16, blank=True, db_index=True)
    # What an append needs to update the projections without reading the history
    # (``projections.Fold``); NULL until the next recomputation from the whole history.
    fold = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name_plural = "contact facts"

    def __str__(self) -> str:
        return f"facts of contact {self.contact_id}"


class ChannelState(models.Model):
    """Per contact and channel: what applies to every topic on that channel."""

    # Indexed by (contact, channel), its unique key: no index of its own (a write less).
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="channel_states", db_index=False
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    # Opted out of a topic that has no event of its own on this channel (wildcard opt-outs).
    opted_out = models.BooleanField(default=False)
    # Opted out, and the latest callback request is later than that opt-out (step 6's exception).
    callback_lifts = models.BooleanField(default=False)
    pause_until = models.DateTimeField(null=True, blank=True)
    # The latest opt-out of every topic here is later than the latest opt-in here (step 4).
    repermission_opted_out = models.BooleanField(default=False)
    has_valid_consent = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact", "channel"], name="channel_state_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} of contact {self.contact_id}"


class ConsentState(models.Model):
    """Current state per contact x topic x channel, exactly as the ledger says."""

    class Status(models.TextChoices):
        OPTED_IN = "opted_in", _("Opted in")
        PENDING = "pending", _("Pending confirmation")
        INVALID = "invalid", _("Invalid consent")
        OPTED_OUT = "opted_out", _("Opted out")
        NONE = "none", _("No choice")

    # Indexed by (contact, topic, channel), its unique key: no index of its own (a write less).
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="consent_states", db_index=False
    )
    topic = models.CharField(max_length=64)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    status = models.CharField(max_length=16, choices=Status.choices)
    since = models.DateTimeField(null=True, blank=True)
    frequency = models.CharField(max_length=32, blank=True)
    # Opted in, and some valid opt-in also covers automated calls (phone, step 8).
    automated = models.BooleanField(default=False)
    # Opted out, and the latest callback request is later than that opt-out (step 6's exception).
    callback_lifts = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "topic", "channel"], name="consent_state_unique"
            ),
        ]
        indexes = [models.Index(fields=["topic", "channel", "status"])]

    def __str__(self) -> str:
        return f"{self.topic}/{self.channel}: {self.status}"


class CatalogFact(models.Model):
    """What a contact bought or subscribed to (categories and products), for the rules."""

    class Kind(models.TextChoices):
        PURCHASE = "purchase", _("Purchase")
        CONTRACT = "contract", _("Contract")

    # Indexed by (contact, kind) below: no index of its own (a write less).
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="catalog_facts", db_index=False
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    category = models.CharField(max_length=64, blank=True)
    product = models.CharField(max_length=128, blank=True)
    contract = models.CharField(max_length=128, blank=True)
    active = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["contact", "kind"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.category} {self.product or self.contract}".strip()


class Outbox(models.Model):
    """Every email (and later webhook) leaves from here: written in the transaction of the change
    that causes it, sent by a Celery task, swept again when it is due. The row is part of the
    proof: what was sent, to whom, when, with our Message-ID and the provider's message id.

    A row holds an intent, never a live link: ``context`` are plain parameters, ``links`` the
    scope and parameters of each link, minted when the email is rendered for sending."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        # Never to be sent: its person was erased before it left.
        CANCELLED = "cancelled", _("Cancelled")

    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.PROTECT, related_name="outbox"
    )
    template = models.CharField(max_length=64, help_text="templates/emails/<template>-*.txt")
    to = models.CharField(max_length=254)
    language = models.CharField(max_length=2, choices=LANGUAGES, default="fr")
    context = models.JSONField(default=dict, blank=True)
    links = models.JSONField(
        default=dict,
        blank=True,
        help_text='Links minted at send time: {"confirm_url": {"scope": ..., "params": {...}}}.',
    )
    is_service = models.BooleanField(
        default=False, help_text="A pure service message: no List-Unsubscribe header."
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    # When the sweep may hand the row to a worker again: after a failed attempt, the backoff;
    # during an attempt, the end of its lease (a sender that died mid-send is retried then).
    next_attempt_at = models.DateTimeField(db_default=Now())
    # When a drain (``outbox.outbox_hand_over``) handed the row to the broker: it is not handed
    # again by the next drain (the sweep still hands back a row whose task never ran).
    queued_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Ours, fixed at the first attempt and kept by every retry, so that a second copy is
    # recognisable (and refused by services that take it as an idempotency key).
    message_id = models.CharField(max_length=255, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "outbox"
        indexes = [
            models.Index(fields=["to", "template", "created_at"]),
            # The per-address rate limits compare addresses whatever their case (to__iexact,
            # UPPER("to") = UPPER(%s)), which the index above cannot serve.
            models.Index(Upper("to"), "template", "created_at", name="outbox_upper_to_template"),
            # What a drain hands over: the pending rows no drain has handed yet, in order.
            models.Index(
                fields=["id"],
                name="outbox_to_hand_over",
                condition=models.Q(status="pending", queued_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.template} to {self.to} ({self.status})"


# --- Compliance records: who looked, who was erased, who may never come back -------------------


class AccessLog(models.Model):
    """Every view of a contact's page and every export: who, when, what. Never edited."""

    at = models.DateTimeField(db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150)
    action = models.CharField(max_length=32)
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.PROTECT, related_name="access_log"
    )
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "access log entry"
        verbose_name_plural = "access log"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.username} {self.action}"


class Erasure(models.Model):
    """A contact whose personal data was wiped; the ledger events and their chain stay."""

    contact = models.OneToOneField(Contact, on_delete=models.PROTECT, related_name="erasure")
    erased_at = models.DateTimeField()
    actor = models.CharField(max_length=150)
    reason = models.TextField()
    suppressed = models.PositiveIntegerField(default=0, help_text="Addresses added to the list.")

    class Meta:
        ordering = ["-erased_at"]

    def __str__(self) -> str:
        return f"erasure of contact {self.contact_id}"


class Suppression(models.Model):
    """An opted-out address, kept only as a keyed hash (HMAC): enough to refuse its re-import,
    useless to anyone without the deployment's key."""

    digest = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=8, help_text="email or phone")
    created_at = models.DateTimeField()
    reason = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.digest[:12]}…"


class ReconfirmCampaign(models.Model):
    """Ask the people who consented under older versions of a notice to confirm under this one.

    Sent in batches (``RECONFIRM_MAX_PER_RUN`` a minute, by the beat task), through the outbox.
    """

    notice = models.ForeignKey(Notice, on_delete=models.PROTECT, related_name="campaigns")
    started_at = models.DateTimeField()
    started_by = models.CharField(max_length=150)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"re-confirmation under {self.notice}"


class ReconfirmRequest(models.Model):
    """One person asked to re-confirm one consent; the link in the email is bound to this row."""

    campaign = models.ForeignKey(
        ReconfirmCampaign, on_delete=models.PROTECT, related_name="requests"
    )
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=8)
    created_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "contact", "channel"], name="reconfirm_once_per_campaign"
            ),
        ]

    def __str__(self) -> str:
        return f"re-confirmation of contact {self.contact_id}"


class EnrolmentLink(models.Model):
    """A one-time link an administrator gives a staff account to set up its first second factor.

    The password alone never enrols a device: a new account needs this link as well (and its
    password), an account that already has a device needs a session verified with it. Only the
    token's SHA-256 is kept; the link itself is shown once, to the administrator who made it.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token_sha256 = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "second-factor enrolment link"

    def __str__(self) -> str:
        return f"enrolment link for user {self.user_id}"


# --- Events out: signed webhooks to other systems -----------------------------------------------


class WebhookEndpoint(models.Model):
    """A system told of consent events (an email tool, a CRM), by Standard Webhooks v1 requests.

    The secret signs every request; a rotation keeps the previous one signing as well until
    ``previous_secret_until``, so that the receiver can switch without losing a message."""

    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(
        default=list, blank=True, help_text="The event types sent here; empty: every type."
    )
    active = models.BooleanField(default=True)
    secret = models.CharField(max_length=100, editable=False)
    previous_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_secret_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(editable=False)
    # Set when a delivery was given up (retried for days); cleared by the next success.
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=200, blank=True, editable=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.description or self.url


class WebhookDelivery(models.Model):
    """One message to one endpoint: written in the transaction of the fact it tells, sent by a
    Celery task, retried with backoff under the same ``message_id`` (the ``webhook-id``)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")
        # Not sent: its endpoint was switched off before it left.
        CANCELLED = "cancelled", _("Cancelled")

    # Indexed by (endpoint, created_at) and (endpoint, contact, sequence) below.
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries", db_index=False
    )
    message_id = models.CharField(max_length=40, unique=True)
    type = models.CharField(max_length=32)
    contact = models.ForeignKey(  # indexed below
        Contact, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    # The contact's ledger sequence of the fact, so that receivers can detect a gap.
    sequence = models.PositiveIntegerField(null=True, blank=True)
    # The body without the address: nothing here names a person.
    payload = models.JSONField(default=dict)
    # The address, for the types whose receivers need it to act; wiped by erasure.
    email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_default=Now())
    give_up_at = models.DateTimeField()
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["endpoint", "created_at"]),
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["endpoint", "contact", "sequence"]),
            models.Index(fields=["contact"]),
        ]

    def __str__(self) -> str:
        return f"{self.type} to endpoint {self.endpoint_id} ({self.status})"


# --- History in: imports from other tools ------------------------------------------------------


class ImportRun(models.Model):
    """One file imported (``consents.imports``): what it held, what it recorded, what it refused."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    preset = models.CharField(max_length=16)
    topic = models.CharField(max_length=64, blank=True)
    filename = models.CharField(max_length=255, blank=True)
    file_sha256 = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    actor = models.CharField(max_length=150)
    webhooks = models.BooleanField(default=False, help_text="Imported events sent to webhooks.")
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    rows = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    # The first refused, conflicting and unproven rows, by row number and reason (no address).
    report = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import #{self.pk} ({self.preset}, {self.status})"


class ImportedRow(models.Model):
    """A source row already recorded: re-importing it records nothing, a changed one conflicts.

    Keyed by a keyed hash (HMAC) of the source's own id of the row, or of its address: nothing
    here can be read back into an address. Deleted with the contact's personal data."""

    # Indexed by (run, proven) and (contact) below, not twice over (a write less per row).
    run = models.ForeignKey(
        ImportRun, on_delete=models.PROTECT, related_name="imported_rows", db_index=False
    )
    row = models.PositiveIntegerField()
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+", db_index=False)
    source = models.CharField(max_length=16)
    key_digest = models.CharField(max_length=64)
    content_digest = models.CharField(max_length=64)
    proven = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "key_digest"], name="imported_row_once"),
        ]
        indexes = [models.Index(fields=["contact"]), models.Index(fields=["run", "proven"])]

    def __str__(self) -> str:
        return f"row {self.row} of import {self.run_id}"
