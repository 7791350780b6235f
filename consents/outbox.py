"""Emails leave through the outbox.

``email_enqueue`` writes a row in the caller's transaction and, once it commits, sees that it
leaves: with in-process tasks (the embedded default) its own task sends it there and then; with a
broker, a drain hands it over (``drain_kick``, ``outbox_drain_run``): a commit queues a drain
only when none is queued or running, so that a burst of sign-ups costs the web one Redis command
each rather than a task's publication each.
The row holds an intent (template, contact, plain parameters, and the scope and parameters of
each link), never a live link: ``render_email`` mints the links when the email is rendered for
sending, so no stored row or admin page holds a key to a person.

``outbox_deliver`` (run by the ``outbox_send`` task) sends one row in three steps:

1. in a short transaction that locks the row, claim an attempt: count it, fix the row's
   Message-ID (the first attempt chooses it, every retry reuses it) and lease the row for
   ``OUTBOX_SEND_LEASE``, so that nobody else sends it meanwhile;
2. with no transaction open and no lock held, render the email and hand it to the provider;
3. record the outcome: sent, with the provider's message id; or failed, with the time of the
   next attempt (exponential backoff with jitter, capped); or given up after
   ``OUTBOX_MAX_ATTEMPTS``.

The periodic sweep hands back to the broker only the rows that are due: a retry whose backoff has
passed, a row whose task never ran (broker down at commit time), a row whose sender died.

What "exactly once" means here. A row is never sent by two workers at once, and a row recorded
as sent is never sent again. A worker can still die after the provider accepted the email and
before the row says so (a kill, the database gone at commit): the row is then sent again once its
lease ends, with the same Message-ID header and the same idempotency key
(``OUTBOX_IDEMPOTENCY_HEADER``). A provider that honours the key (Brevo, within its key's
lifetime, longer than the lease) delivers it once. Django's SMTP and file backends, and providers
that do not deduplicate, deliver a second copy carrying the same Message-ID, which mail clients
recognise as the same message. So: at least once always, exactly once with a deduplicating
provider.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Mapping
from datetime import timedelta
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import translation

from config.cache import RedisCache, cache_down
from consents import clock, statements
from consents.links import intent as link_intent
from consents.links import url as link_url
from consents.models import Contact, Outbox

logger = logging.getLogger(__name__)

# Set (SET NX) by the commit that queues a drain, deleted by the drain before its last look:
# while it is there, a drain is on its way and will see a row committed meanwhile. It ends by
# itself after DRAIN_KEY_SECONDS, should its drain never run (a worker killed, a queue lost).
DRAIN_KEY = "outbox:drain"
DRAIN_KEY_SECONDS = 30
# Rows handed to the broker per transaction of a drain.
HAND_OVER_BATCH = 100

UNSUBSCRIBE = "unsubscribe_url"


def email_enqueue(
    *,
    to: str,
    template: str,
    context: dict[str, Any],
    language: str = "fr",
    contact: Contact | None = None,
    is_service: bool = False,
    links: Mapping[str, dict[str, Any]] | None = None,
) -> Outbox:
    """Write an outbox row in the current transaction; the send is queued once it commits.
    Inside ``statements.together()`` the row's id is known once the block ends.

    ``links`` maps a template variable to ``consents.links.intent(scope, **params)``. Every
    email that is not a pure service message carries the contact's unsubscribe link, minted at
    send time like the others: such an email needs a contact.
    """
    intents = dict(links or {})
    if not is_service:
        if contact is None:
            raise ValueError(
                "A marketing or consent email needs a contact for its unsubscribe_url."
            )
        intents.setdefault(UNSUBSCRIBE, link_intent("unsubscribe"))
    if intents and contact is None:
        raise ValueError("Links are minted for a contact: give the email's contact.")
    for name, spec in intents.items():
        # Refuses unknown scopes and parameters now, not at send time.
        link_intent(spec["scope"], **spec.get("params", {}))
        if name in context:
            raise ValueError(f"{name!r} is a link: it is minted when the email is sent.")
    now = clock.now()
    row = statements.insert(
        Outbox(
            contact=contact,
            template=template,
            to=to,
            language=language if language in ("fr", "en") else "fr",
            context=context,
            links=intents,
            is_service=is_service,
            created_at=now,
            next_attempt_at=now,
        ),
        later=True,  # inside statements.together(), its id is set when the block ends
    )
    transaction.on_commit(lambda: committed(row.pk))
    return row


def committed(outbox_id: int) -> None:
    """A row was committed: see that it leaves. With in-process tasks, or a cache the workers do
    not share (the drain's key would be this process's alone), its own task is queued."""
    from consents.tasks import outbox_send

    if outbox_send.app.conf.task_always_eager or not _cache_shared():
        queue_send(outbox_id)
    else:
        drain_kick()


def _cache_shared() -> bool:
    return isinstance(caches["default"], RedisCache)


def drain_kick() -> bool:
    """Queue a drain unless one is queued or running (``DRAIN_KEY``): that one sees the rows
    committed before it deletes the key. False when the broker could not be reached (the key
    is released, so that the next commit tries again; the sweep sends meanwhile)."""
    from consents.tasks import outbox_drain

    if not cache.add(DRAIN_KEY, 1, timeout=DRAIN_KEY_SECONDS) and not cache_down(cache):
        return True  # a drain is on its way
    try:
        outbox_drain.apply_async(retry=False)
    except Exception:
        cache.delete(DRAIN_KEY)
        logger.warning("outbox: could not reach the broker to queue a drain; the sweep will")
        return False
    return True


def outbox_drain_run() -> int:
    """What a drain does: hand over every row waiting, delete ``DRAIN_KEY``, then look once more.

    A commit that found the key did not queue a drain: its row was committed before the key was
    deleted, so the last look (a new snapshot, after the delete) sees it. A commit after the
    delete finds no key and queues a drain of its own. Returns the rows handed over."""
    handed = outbox_hand_over()
    cache.delete(DRAIN_KEY)
    return handed + outbox_hand_over()


def outbox_hand_over(batch: int = HAND_OVER_BATCH) -> int:
    """Queue one send task per pending row no drain has handed over yet, oldest first, and mark
    them (``queued_at``) in the same transaction: a drain killed midway hands its batch over
    again (a second task finds the row sent or leased, and does nothing). Rows another drain
    is marking are skipped. Stops at the first row the broker refuses: the sweep sends it."""
    handed = 0
    while True:
        with transaction.atomic():
            ids = list(
                Outbox.objects.select_for_update(skip_locked=True)
                .filter(
                    status=Outbox.Status.PENDING,
                    queued_at__isnull=True,
                    next_attempt_at__lte=clock.now(),
                )
                .order_by("id")
                .values_list("id", flat=True)[:batch]
            )
            queued = []
            for outbox_id in ids:
                if not queue_send(outbox_id):
                    break
                queued.append(outbox_id)
            if queued:
                Outbox.objects.filter(pk__in=queued).update(queued_at=clock.now())
        handed += len(queued)
        if len(queued) < batch:
            return handed


def queue_send(outbox_id: int) -> bool:
    """Hand a row to the broker. A broker outage must never fail the request: the sweep retries."""
    from consents.tasks import outbox_send

    try:
        outbox_send.apply_async(args=[outbox_id], retry=False)
    except Exception:
        logger.warning("outbox %s: could not reach the broker; the sweep will retry", outbox_id)
        return False
    return True


def mint_links(row: Outbox) -> dict[str, str]:
    """The row's links, signed now, bound to the address the email goes to."""
    if not row.links:
        return {}
    if row.contact is None:
        raise ValueError(f"outbox {row.pk}: links need the row's contact")
    return {
        name: link_url(spec["scope"], row.contact, to=row.to, **spec.get("params", {}))
        for name, spec in row.links.items()
    }


def idempotency_key(message_id: str) -> str:
    """The key sent to services that deduplicate: the unique part of our Message-ID."""
    return message_id.strip("<>").split("@", 1)[0]


def unsubscribe_headers(unsubscribe_url: str) -> dict[str, str]:
    """RFC 2369 and RFC 8058: mail clients show an unsubscribe button that POSTs to the link.
    Our emails carry them, and the API hands them to systems that send their own."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def render_email(row: Outbox) -> EmailMultiAlternatives:
    minted = mint_links(row)
    context = {
        **row.context,
        **minted,
        "brand_name": settings.BRAND_NAME,
        "site_url": settings.SITE_URL,
    }
    with translation.override(row.language):
        subject = render_to_string(f"emails/{row.template}-subject.txt", context)
        text = render_to_string(f"emails/{row.template}-body.txt", context)
        html = render_to_string(f"emails/{row.template}-body.html", context)
    headers = {}
    unsubscribe = minted.get(UNSUBSCRIBE)
    if unsubscribe and not row.is_service:
        headers.update(unsubscribe_headers(unsubscribe))
    if row.message_id:
        headers["Message-ID"] = row.message_id
        if settings.OUTBOX_IDEMPOTENCY_HEADER:
            headers[settings.OUTBOX_IDEMPOTENCY_HEADER] = idempotency_key(row.message_id)
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[row.to],
        headers=headers,
    )
    message.attach_alternative(html, "text/html")
    return message


class OutboxSendError(Exception):
    """Sending failed; the row keeps the error and stays pending until its next attempt."""


def new_message_id() -> str:
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "assent.localhost"
    return f"<{uuid.uuid4()}@{domain}>"


def backoff(attempts: int, base: timedelta, cap: timedelta) -> timedelta:
    """How long to wait after the ``attempts``-th failed attempt: doubling from ``base``, capped,
    and up to 20% later at random, so that what an outage held back does not all come back at
    once (emails here, webhooks in ``consents.webhooks_out.sending``)."""
    seconds = min(cap.total_seconds(), base.total_seconds() * 2 ** min(max(attempts, 1) - 1, 30))
    return timedelta(seconds=seconds * (1 + 0.2 * random.random()))  # noqa: S311 - not a secret


def retry_delay(attempts: int) -> timedelta:
    return backoff(attempts, settings.OUTBOX_RETRY_BASE, settings.OUTBOX_RETRY_MAX)


@transaction.atomic
def _claim(outbox_id: int) -> Outbox | str:
    """Lock the row and take one attempt at it, or say why not (its status, or "missing")."""
    row = (
        Outbox.objects.select_for_update(of=("self",))
        .select_related("contact")
        .filter(pk=outbox_id)
        .first()
    )
    if row is None:
        return "missing"
    # Only pending rows are ever sent (another status, such as a cancellation, stops them).
    if row.status != Outbox.Status.PENDING:
        return row.status
    now = clock.now()
    if row.next_attempt_at > now:
        # Another worker holds its lease, or it is waiting for its next attempt.
        return row.status
    row.attempts += 1
    row.message_id = row.message_id or new_message_id()
    row.next_attempt_at = now + settings.OUTBOX_SEND_LEASE
    row.save(update_fields=["attempts", "message_id", "next_attempt_at"])
    return row


def _record_sent(row: Outbox, message: EmailMultiAlternatives) -> None:
    status = getattr(message, "anymail_status", None)
    # Whoever holds the row now, it was sent: say so (a later attempt then finds nothing to do).
    Outbox.objects.filter(pk=row.pk, status=Outbox.Status.PENDING).update(
        status=Outbox.Status.SENT,
        sent_at=clock.now(),
        provider_message_id=(getattr(status, "message_id", None) or "")[:255],
        last_error="",
    )


def _record_failure(row: Outbox, exc: Exception) -> str:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    if row.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
        status = Outbox.Status.FAILED.value
        logger.error("outbox %s: giving up after %s attempts", row.pk, row.attempts)
    else:
        status = Outbox.Status.PENDING.value
    # Only while the row is still ours: a later attempt (after our lease) keeps its own state.
    Outbox.objects.filter(pk=row.pk, status=Outbox.Status.PENDING, attempts=row.attempts).update(
        status=status,
        last_error=error,
        next_attempt_at=clock.now() + retry_delay(row.attempts),
    )
    return status


def outbox_deliver(outbox_id: int) -> str:
    """Send one row if it is due. Returns the row's status afterwards.

    Raises ``OutboxSendError`` when the attempt failed and another will follow.
    """
    claimed = _claim(outbox_id)
    if isinstance(claimed, str):
        return claimed
    row = claimed
    try:
        message = render_email(row)
        message.send()
    except Exception as exc:
        status = _record_failure(row, exc)
        if status == Outbox.Status.PENDING:
            raise OutboxSendError(f"{type(exc).__name__}: {exc}"[:2000]) from exc
        return status
    _record_sent(row, message)
    return Outbox.Status.SENT.value


def outbox_due(older_than: timedelta | None = None) -> list[int]:
    """Rows to hand to the broker now: pending, due, and older than the sweep's delay (a newer
    row's own task is on its way)."""
    now = clock.now()
    cutoff = now - (settings.OUTBOX_SWEEP_AFTER if older_than is None else older_than)
    return list(
        Outbox.objects.filter(
            status=Outbox.Status.PENDING, next_attempt_at__lte=now, created_at__lte=cutoff
        )
        .order_by("id")
        .values_list("id", flat=True)[:1000]
    )
