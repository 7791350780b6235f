"""Events out: signed webhooks that tell other systems (an email tool, a CRM) what changed.

Signed exactly as Standard Webhooks v1 says: ``webhook-id`` (the message, the same on every
retry), ``webhook-timestamp`` (the attempt, in Unix seconds) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, one per secret while a rotation overlaps).

Delivered like the emails of ``consents.outbox``: a ``WebhookDelivery`` row per endpoint is
written in the transaction of the ledger event it tells (a rolled-back write sends nothing), handed
to Celery on commit, and swept again when due (a committed one is sent even if the broker was
down then). A failed attempt is retried with exponential backoff for about three days, then the
endpoint is marked failing and the administrators are told.

Payloads are thin: what happened, to which contact (its public id), at which position of the
contact's ledger (``sequence``, with ``previous_sequence``: the sequence of the previous message
this endpoint was sent about the contact, so that a receiver sees a gap), on which topic and
channel, by which method, when. An email address only where the receiver needs it to act (to
stop sending to it, to add it), never after erasure: it lives in its own column, wiped with the
contact.

Endpoints are refused when their URL resolves to loopback, private, link-local or metadata
addresses, when saved and again at each send, and the request goes to the address that was
checked (no second lookup an attacker's DNS could answer differently).

The package's rooms: ``signing`` (event types, secrets, signatures), ``network`` (where a request
may go, and the request), ``deliveries`` (rows written with the facts), ``sending`` (attempts,
retries, failing endpoints) and ``endpoints`` (what the admin and the API manage). The names
below are its public interface: callers write ``webhooks_out.endpoint_create(...)``.
"""

from consents.webhooks_out.deliveries import (
    contact_erased,
    event_recorded,
    events_recorded,
    kind_of,
    muted,
    notice_published,
)
from consents.webhooks_out.endpoints import (
    deliveries_replay,
    endpoint_as_dict,
    endpoint_create,
    endpoint_rotate_secret,
    endpoint_update,
)
from consents.webhooks_out.network import UnsafeAddress, check_url, post, resolve
from consents.webhooks_out.sending import (
    endpoint_failing,
    queue_many,
    queue_send,
    retry_after,
    retry_delay,
    webhook_deliver,
    webhooks_due,
)
from consents.webhooks_out.signing import (
    EVENT_TYPES,
    Kind,
    body_bytes,
    headers_for,
    secret_new,
    sign,
    signing_secrets,
)

__all__ = [
    "EVENT_TYPES",
    "Kind",
    "UnsafeAddress",
    "body_bytes",
    "check_url",
    "contact_erased",
    "deliveries_replay",
    "endpoint_as_dict",
    "endpoint_create",
    "endpoint_failing",
    "endpoint_rotate_secret",
    "endpoint_update",
    "event_recorded",
    "events_recorded",
    "headers_for",
    "kind_of",
    "muted",
    "notice_published",
    "post",
    "queue_many",
    "queue_send",
    "resolve",
    "retry_after",
    "retry_delay",
    "secret_new",
    "sign",
    "signing_secrets",
    "webhook_deliver",
    "webhooks_due",
]
