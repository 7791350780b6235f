"""API keys and the answers kept for ``Idempotency-Key`` replays."""

from __future__ import annotations

from django.conf import settings
from django.db import models

# What a key may do. Reads of people and writes are separate; a key holds only what it needs.
SCOPES = {
    "decisions:read": "Ask whether a person may be contacted (POST /decisions).",
    "audience:read": "Export the audience of a message (GET /audiences).",
    "events:write": "Record what happened elsewhere (POST /events).",
    "contacts:read": "Read a person's addresses, state and ledger.",
    "receipts:read": "Read a person's signed consent receipts.",
    "links:create": "Mint a person's unsubscribe and preference links.",
    "dsr:write": "Data-subject requests: erasure and access export.",
    "imports:write": "Upload an import and read its status.",
    "webhooks:manage": "Create, change, rotate and replay webhook endpoints.",
}
SCOPE_CHOICES = [(name, f"{name}: {text}") for name, text in SCOPES.items()]


class ApiKey(models.Model):
    """A key another system holds. Only its SHA-256 is stored; the key is shown once."""

    name = models.CharField(
        max_length=100, unique=True, help_text="Names the system (written in the access log)."
    )
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    allowed_networks = models.JSONField(
        default=list, blank=True, help_text="IP networks the key may be used from; empty: any."
    )
    rate_per_minute = models.PositiveIntegerField(default=600)
    created_at = models.DateTimeField(editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def actor(self) -> str:
        return f"api:{self.name}"


class IdempotentRequest(models.Model):
    """The first answer to a write sent with an ``Idempotency-Key``, replayed for 24 hours."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_type = models.CharField(max_length=100, blank=True)
    response_body = models.BinaryField(blank=True, default=b"")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "key"], name="idempotent_request_once")
        ]

    def __str__(self) -> str:
        return f"{self.api_key_id}:{self.key}"
