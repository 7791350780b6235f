"""``Idempotency-Key`` on writes (draft-ietf-httpapi-idempotency-key-header).

The first request with a key is recorded as running (committed at once, in its own transaction),
then its answer is stored. The same key and the same body replays that answer (with
``Idempotent-Replayed: true``); the same key with another body is 422; the same key while the
first is still running is 409. An answer that failed on our side (5xx) is not kept: the client may
retry. Keys are kept 24 hours (``IDEMPOTENCY_TTL``), per API key, in the database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpResponse
from rest_framework.response import Response

from api.models import ApiKey, IdempotentRequest
from api.problems import Problem
from consents import clock

HEADER = "HTTP_IDEMPOTENCY_KEY"
TTL = timedelta(hours=24)
MAX_LENGTH = 255


def fingerprint(method: str, path: str, body: bytes) -> str:
    h = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def _replay(record: IdempotentRequest) -> HttpResponse:
    response = HttpResponse(
        bytes(record.response_body),
        status=record.response_status,
        content_type=record.response_type or "application/json",
    )
    response["Idempotent-Replayed"] = "true"
    return response


def purge(now: Any = None) -> int:
    now = now or clock.now()
    return IdempotentRequest.objects.filter(created_at__lt=now - TTL).delete()[0]


def idempotent(
    request: Any, handler: Callable[[], Response], *, body: bytes | None = None
) -> Response | HttpResponse:
    """Run ``handler`` once per ``Idempotency-Key`` (when the request carries one)."""
    value = request.META.get(HEADER)
    if value is None:
        return handler()
    value = value.strip()
    if not value or len(value) > MAX_LENGTH:
        raise Problem(
            "validation-error",
            f"Idempotency-Key: 1 to {MAX_LENGTH} characters.",
            field="Idempotency-Key",
        )
    key: ApiKey = request.auth
    raw = request.body if body is None else body
    print_ = fingerprint(request.method, request.path, raw)
    now = clock.now()
    try:
        with transaction.atomic():
            IdempotentRequest.objects.filter(
                api_key=key, key=value, created_at__lt=now - TTL
            ).delete()
            record = IdempotentRequest.objects.create(
                api_key=key, key=value, fingerprint=print_, created_at=now
            )
    except IntegrityError:
        existing = IdempotentRequest.objects.filter(api_key=key, key=value).first()
        if existing is None:  # finished and failed meanwhile: the client may retry
            raise Problem("idempotency-conflict") from None
        if existing.fingerprint != print_:
            raise Problem("idempotency-key-reused", field="Idempotency-Key") from None
        if existing.status == IdempotentRequest.Status.RUNNING:
            raise Problem("idempotency-conflict", field="Idempotency-Key") from None
        return _replay(existing)
    try:
        response = handler()
    except Exception:
        IdempotentRequest.objects.filter(pk=record.pk).delete()
        raise
    if response.status_code >= 500:
        IdempotentRequest.objects.filter(pk=record.pk).delete()
        return response
    return _Finisher(record, response).response


class _Finisher:
    """Stores the answer once DRF has rendered it."""

    def __init__(self, record: IdempotentRequest, response: Response) -> None:
        self.record, self.response = record, response
        if isinstance(response, Response):
            response.add_post_render_callback(self.store)
        else:
            self.store(response)

    def store(self, response: HttpResponse) -> HttpResponse:
        IdempotentRequest.objects.filter(pk=self.record.pk).update(
            status=IdempotentRequest.Status.DONE,
            response_status=response.status_code,
            response_type=response.get("Content-Type", "")[:100],
            response_body=response.content,
        )
        return response
