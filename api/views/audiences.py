"""``GET /v1/audiences``: the audience of a message (``consents.audience``), streamed as NDJSON or
CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers as drf
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from api import serializers as s
from api.auth import ScopeMissing, key_of
from api.problems import Problem
from api.views.base import ApiView, problem_responses
from consents import audience as audience_sql
from consents import clock, ledger, links, rules, services
from consents.models import AccessLog, Contact

# The ``since`` cursor of an audience is this much before the export began: a transaction still
# open then may record events dated a little earlier; a sync that sees a row twice loses nothing.
CURSOR_LAG = timedelta(minutes=1)
# Rows read from the cursor, links minted and bytes sent, a batch at a time.
CHUNK = 2000


class NdjsonRenderer(BaseRenderer):
    media_type = "application/x-ndjson"
    format = "ndjson"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None
    ) -> bytes:
        return json.dumps(data).encode() if data is not None else b""


class CsvRenderer(NdjsonRenderer):
    media_type = "text/csv"
    format = "csv"


class AudienceQuery(drf.Serializer):
    channel = drf.ChoiceField(choices=s.CHANNELS)
    purpose = drf.ChoiceField(choices=s.PURPOSES)
    topic = drf.CharField(required=False, max_length=64)
    category = drf.CharField(required=False, max_length=64)
    product = drf.CharField(required=False, max_length=128)
    as_of = s.InstantField(required=False)
    since = s.InstantField(required=False, help_text="The Audience-Cursor of a past export.")
    links = drf.BooleanField(required=False, default=False, help_text="Needs links:create.")


class AudienceView(ApiView):
    scopes = {"GET": "audience:read"}
    renderer_classes = [NdjsonRenderer, CsvRenderer]

    @extend_schema(
        operation_id="audience",
        summary="The audience of a message, streamed as NDJSON or CSV (by Accept)",
        description="The same query as `manage.py audience`, read through a server-side cursor "
        "and never held in memory. Each row: the public id, the address, the reason. With "
        "`since` (the `Audience-Cursor` header of an earlier export), only the contacts whose "
        "ledger changed since, each with `allowed` (false: remove them). With `links=true` "
        "(scope links:create) each row carries the person's unsubscribe and preference URLs.",
        parameters=[AudienceQuery],
        responses={
            (200, "application/x-ndjson"): OpenApiTypes.STR,
            (200, "text/csv"): OpenApiTypes.STR,
            **problem_responses(406),
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        query = AudienceQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        q = query.validated_data
        message = rules.Message(
            channel=q["channel"], purpose=q["purpose"], topic=q.get("topic"),
            category=q.get("category"), product=q.get("product"),
        )  # fmt: skip
        try:
            rules.check_message(message)
        except rules.MalformedMessage as exc:
            raise Problem("validation-error", exc.problem, field=exc.field) from exc
        key = key_of(request)
        if q["links"] and "links:create" not in key.scopes:
            raise ScopeMissing("The links column needs the scope 'links:create'.")
        started = clock.now()
        at = q.get("as_of") or started
        since = q.get("since")
        fmt = request.accepted_renderer.format
        services.access_log(
            user=request.user, username=key.actor, action="api_audience", contact=None,
            detail=f"{message} as of {ledger.iso(at)} since {ledger.iso(since)} links {q['links']}",
        )  # fmt: skip
        if since is not None:
            rows = audience_sql.changed_since(message, at, since, chunk_size=CHUNK)
        else:
            rows = audience_sql.audience(message, at, chunk_size=CHUNK)
        minter = key.actor if q["links"] else None
        body = stream(rows, fmt, incremental=since is not None, links_for=minter)
        response = StreamingHttpResponse(
            body, content_type=f"{request.accepted_renderer.media_type}; charset=utf-8"
        )
        response["Audience-Cursor"] = ledger.iso(started - CURSOR_LAG)
        return response


def stream(
    rows: Iterator[audience_sql.AudienceRow], fmt: str, *, incremental: bool, links_for: str | None
) -> Iterator[bytes]:
    columns = list(audience_sql.EXPORT_COLUMNS)
    if incremental:
        columns.append("allowed")
    if links_for:
        columns += ["unsubscribe_url", "preferences_url"]
    buffer = io.StringIO()
    writer = csv.writer(buffer) if fmt == "csv" else None
    if writer:
        writer.writerow(columns)
    batch: list[audience_sql.AudienceRow] = []

    def flush() -> bytes:
        minted = mint_for(batch, links_for) if links_for else {}
        for row in batch:
            values: list[Any] = [row.public_id, row.address or None, row.reason or None]
            if incremental:
                values.append(bool(row.reason))
            if links_for:
                pair = minted.get(row.contact_id, (None, None))
                values += list(pair)
            if writer:
                writer.writerow(["" if v is None else v for v in values])
            else:
                buffer.write(json.dumps(dict(zip(columns, values, strict=True))) + "\n")
        batch.clear()
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text.encode()

    for row in rows:
        batch.append(row)
        if len(batch) >= CHUNK:
            yield flush()
    yield flush()


def mint_for(batch: list[audience_sql.AudienceRow], actor: str) -> dict[int, tuple[str, str]]:
    """Links for the rows of a batch (one query), each mint in the access log first."""
    wanted = {r.contact_id: r for r in batch if r.reason}
    contacts = Contact.objects.filter(pk__in=list(wanted)).only(
        "id", "public_id", "link_version", "email"
    )
    now = clock.now()
    out, log = {}, []
    for c in contacts:
        if not c.email:
            continue
        log.append(AccessLog(at=now, username=actor, action="api_links", contact=c,
                             detail="audience export: unsubscribe, preferences"))  # fmt: skip
        out[c.pk] = (
            links.url("unsubscribe", c, to=c.email),
            links.url("preferences", c, to=c.email),
        )
    AccessLog.objects.bulk_create(log)
    return out
