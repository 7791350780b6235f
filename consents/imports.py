"""History in: contacts and their consent history from another tool's export.

A row becomes the events it tells, each dated at its original instant (``occurred_at`` from the
file; recorded now), method ``import``, with as proof the file's SHA-256, the row number and the
source's own evidence (the IP addresses and instants it kept, beside the event like any evidence).
A row whose source kept no evidence of the opt-in is imported as what it is: an opt-in without
proof, which RULES.md does not count as consent; the report lists it for a repermission campaign.

- Unsubscribed rows become opt-outs, cleaned (undeliverable) rows hard bounces, after the opt-in
  they had given.
- An address on the suppression list never comes back as consenting: its opt-in is not recorded
  (the ledger records the suppression opt-out itself, as for any contact with that address).
- A contact already here keeps its history: the imported facts join it at their own instants,
  so an opt-out on file newer than the imported opt-in still wins (the rules read instants).
- Re-importing a row records nothing (each row is remembered by a keyed hash of the source's id
  for it, or of its address, and of its content); a row that changed since is a conflict,
  reported and not recorded.
- No email is sent, and no webhook unless asked for (``webhooks=True``).

New contacts go through ``consents.bulk`` on PostgreSQL (chained, with their heads, ``COPY``, one
transaction per batch, in bounded memory); contacts already here, and every contact on SQLite,
through ``consents.services``, one row per transaction.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import hmac
import json
import socket
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models.functions import Upper

from consents import bulk, clock, services, webhooks_out
from consents.models import (
    Contact,
    ImportedRow,
    ImportRun,
    Suppression,
    Topic,
)
from consents.vocab import CHANNELS, Channel, Doi, EventType, Method

PRESETS = ("mailchimp", "brevo", "assent")
BATCH_ROWS = 10_000
# Issues kept on the import's record (by row number and reason): the report file has them all.
REPORT_KEEP = 1000


class ImportError_(Exception):  # noqa: N801 - ``ImportError`` is Python's
    """The file as a whole cannot be imported (its format, a missing column, an unknown topic)."""


# --- Reading files --------------------------------------------------------------------------------


def file_digest(path: Path) -> tuple[str, int]:
    """The file's SHA-256 and its number of lines (for the progress bar), in one pass."""
    digest = hashlib.sha256()
    lines = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            lines += chunk.count(b"\n")
    return digest.hexdigest(), lines


def read_rows(path: Path) -> Iterator[dict[str, str]]:
    """The file's rows as dicts keyed by the header; CSV (comma or semicolon, UTF-8) streamed,
    XLSX through tablib."""
    if path.suffix.lower() == ".xlsx":
        yield from _read_xlsx(path)
        return
    with path.open(encoding="utf-8-sig", newline="") as f:
        sample = f.readline()
        if not sample.strip():
            raise ImportError_("The file is empty.")
        delimiter = ";" if sample.count(";") > sample.count(",") else ","
        f.seek(0)
        reader = csv.DictReader(f, delimiter=delimiter)
        try:
            for row in reader:
                yield {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ImportError_(
                f"Line {reader.line_num}: the file is not readable CSV ({exc})."
            ) from exc


def _read_xlsx(path: Path) -> Iterator[dict[str, str]]:
    import tablib

    try:
        with path.open("rb") as f:
            data = tablib.Dataset().load(f, format="xlsx")
    except Exception as exc:
        raise ImportError_(f"The file is not a readable XLSX workbook ({exc}).") from exc
    headers = [str(h or "").strip() for h in data.headers or []]
    for values in data:
        yield {h: _cell(v) for h, v in zip(headers, values, strict=False) if h}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value).strip()


def parse_instant(value: str) -> datetime | None:
    """An instant as the peers export them: ISO 8601 (``2024-03-05 14:22:10``, with or without an
    offset; Mailchimp's and Brevo's are UTC) or ``05-03-2024 14:22``; None when empty."""
    value = value.strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
        for pattern in (
            "%d-%m-%Y %H:%M:%S",
            "%d-%m-%Y %H:%M",
            "%d/%m/%Y %H:%M:%S",
            "%d/%m/%Y %H:%M",
        ):
            try:
                parsed = datetime.strptime(value, pattern)
                break
            except ValueError:
                continue
        if parsed is None:
            raise ValueError(value) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _ip(value: str) -> str | None:
    """A valid IP address as given, or None (an address the source mangled is no evidence)."""
    value = value.strip()
    if not value:
        return None
    # inet_pton, in C, is a fraction of the cost of ``ipaddress`` on a million rows.
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, value)
        except OSError:
            continue
        return value
    return None


def _yes(value: str) -> bool:
    return value.strip().lower() in ("1", "yes", "true", "oui", "y", "x")


# --- What a row says ------------------------------------------------------------------------------


class Refused(Exception):
    """This row cannot be imported; the message says why (never the address itself)."""


@dataclass
class Mapped:
    """One source row, read: who, what happened to them, and how the source knows."""

    email: str
    status: str
    key: str  # the source's id for the row, or its address
    contact: dict[str, Any]
    events: list[dict[str, Any]]
    proven: bool
    content: str  # canonical text of what the row says, to recognise a changed row


@dataclass
class Context:
    preset: str
    topic: str
    sha256: str
    locale: str
    now: datetime
    topics: dict[str, list[str]]


def _reference(ctx: Context, row: int) -> str:
    return f"import {ctx.preset} sha256:{ctx.sha256} row:{row}"


def _instant(row: dict[str, str], column: str, ctx: Context) -> datetime | None:
    try:
        at = parse_instant(row.get(column, ""))
    except ValueError:
        raise Refused(f"{column}: not a date and time") from None
    if at is not None and at > ctx.now + settings.LEDGER_MAX_CLOCK_SKEW:
        raise Refused(f"{column}: in the future")
    return at


def _email(value: str) -> str:
    try:
        return services.normalize_email(value)
    except ValidationError:
        raise Refused("email: not a valid address") from None


def _opt_in_events(
    ctx: Context,
    row_number: int,
    *,
    topic: str,
    channel: str,
    at: datetime,
    ip: str | None,
    confirmed_at: datetime | None,
    confirm_ip: str | None,
    proven: bool,
    evidence: dict[str, str],
    reference: str = "",
) -> list[dict[str, Any]]:
    """The opt-in (and its double opt-in confirmation, if the source kept one)."""
    proof = reference or _reference(ctx, row_number)
    opt_in: dict[str, Any] = bulk.opt_in(
        topic,
        channel,
        at,
        method=Method.IMPORT,
        doi=Doi.PENDING if confirmed_at else Doi.NONE,
        actor="system",
        collection_point=f"import:{ctx.preset}",
    )
    if proven:
        opt_in["proof"] = proof[:500]
    if ip:
        opt_in["ip_address"] = ip
    if evidence:
        opt_in["details"] = {"source": ctx.preset, **evidence}
    events = [opt_in]
    if confirmed_at:
        confirm: dict[str, Any] = bulk.doi_confirmed(
            topic,
            channel,
            max(confirmed_at, at),
            method=Method.IMPORT,
            actor="system",
            collection_point=f"import:{ctx.preset}",
            proof=proof[:500],
        )
        if confirm_ip:
            confirm["ip_address"] = confirm_ip
        events.append(confirm)
    return events


def _contact(email: str, first_name: str, collected_at: datetime, ctx: Context) -> dict[str, Any]:
    return {
        "email": email,
        "first_name": first_name[:150],
        "locale": ctx.locale,
        "collected_at": collected_at,
    }


def _canonical(values: dict[str, str]) -> str:
    return json.dumps(values, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


MAILCHIMP_TIMES = ("OPTIN_TIME", "CONFIRM_TIME", "LAST_CHANGED", "UNSUB_TIME", "CLEAN_TIME")


def map_mailchimp(row: dict[str, str], n: int, ctx: Context) -> Mapped:
    """A row of a Mailchimp audience export: subscribed, unsubscribed (``UNSUB_TIME``) or
    cleaned (``CLEAN_TIME``, hard-bounced) members. Proven when Mailchimp kept the opt-in's or
    the confirmation's IP address and instant."""
    email = _email(row.get("Email Address", ""))
    optin_at = _instant(row, "OPTIN_TIME", ctx)
    confirm_at = _instant(row, "CONFIRM_TIME", ctx)
    changed_at = _instant(row, "LAST_CHANGED", ctx)
    unsub_at = _instant(row, "UNSUB_TIME", ctx)
    clean_at = _instant(row, "CLEAN_TIME", ctx)
    if "CLEAN_TIME" in row:
        status = "cleaned"
    elif "UNSUB_TIME" in row:
        status = "unsubscribed"
    else:
        status = "subscribed"
    optin_ip, confirm_ip = _ip(row.get("OPTIN_IP", "")), _ip(row.get("CONFIRM_IP", ""))
    at = optin_at or confirm_at or changed_at
    if at is None:
        raise Refused("OPTIN_TIME, CONFIRM_TIME and LAST_CHANGED: no instant at all")
    evidenced = bool((optin_at and optin_ip) or (confirm_at and confirm_ip))
    evidence = {
        k: row[k]
        for k in ("OPTIN_TIME", "OPTIN_IP", "CONFIRM_TIME", "CONFIRM_IP", "LEID", "EUID")
        if row.get(k)
    }
    events = _opt_in_events(
        ctx,
        n,
        topic=ctx.topic,
        channel=Channel.EMAIL,
        at=at,
        ip=optin_ip,
        # A confirmation with no trace of the person (Mailchimp dates a list added by hand as
        # "confirmed") is no double opt-in.
        confirmed_at=confirm_at if evidenced else None,
        confirm_ip=confirm_ip,
        proven=evidenced,
        evidence=evidence,
    )
    end_proof = {
        "actor": "system",
        "collection_point": "import:mailchimp",
        "proof": _reference(ctx, n),
    }
    if status == "unsubscribed":
        events.append(
            bulk.opt_out(
                ctx.topic,
                Channel.EMAIL,
                max(unsub_at or changed_at or at, at),
                method=Method.IMPORT,
                **end_proof,
            )  # fmt: skip
        )
    elif status == "cleaned":
        events.append(bulk.bounce(True, max(clean_at or changed_at or at, at), **end_proof))
    first = " ".join(p for p in (row.get("First Name", ""), row.get("FNAME", "")) if p)
    content = {k: v for k, v in row.items() if k in MAILCHIMP_TIMES or k.endswith("_IP")}
    content.update(email=email.lower(), status=status, topic=ctx.topic)
    return Mapped(
        email=email,
        status=status,
        key=row.get("EUID") or row.get("LEID") or email.lower(),
        contact=_contact(email, first, at, ctx),
        events=events,
        # Whether the consent the row leaves in place has proof (one that ended needs none).
        proven=evidenced or status != "subscribed",
        content=_canonical(content),
    )


def map_brevo(row: dict[str, str], n: int, ctx: Context) -> Mapped:
    """A row of a Brevo contacts export. ``EMAIL_BLACKLISTED`` (or ``BLACKLISTED``) is an opt-out
    of every email, ``SMS_BLACKLISTED`` of every text message. Brevo exports no IP address: an
    opt-in is proven when Brevo says the contact confirmed a double opt-in."""
    email = _email(row.get("EMAIL", ""))
    added_at = _instant(row, "ADDED_TIME", ctx)
    modified_at = _instant(row, "MODIFIED_TIME", ctx)
    at = added_at or modified_at
    if at is None:
        raise Refused("ADDED_TIME and MODIFIED_TIME: no instant at all")
    email_out = _yes(row.get("EMAIL_BLACKLISTED", "") or row.get("BLACKLISTED", ""))
    sms_out = _yes(row.get("SMS_BLACKLISTED", ""))
    evidenced = _yes(row.get("DOUBLE_OPT-IN", "") or row.get("DOUBLE_OPT_IN", ""))
    evidence = {k: row[k] for k in ("ADDED_TIME", "DOUBLE_OPT-IN", "CONTACT ID") if row.get(k)}
    events = _opt_in_events(
        ctx,
        n,
        topic=ctx.topic,
        channel=Channel.EMAIL,
        at=at,
        ip=None,
        confirmed_at=None,
        confirm_ip=None,
        proven=evidenced,
        evidence=evidence,
    )
    end = max(modified_at or at, at)
    end_proof = {"actor": "system", "collection_point": "import:brevo", "proof": _reference(ctx, n)}
    contact = _contact(email, row.get("FIRSTNAME", "") or row.get("PRENOM", ""), at, ctx)
    phone = ""
    if row.get("SMS"):
        try:
            phone = services.normalize_phone(row["SMS"])
        except ValidationError:
            phone = ""
    if phone:
        contact["phone"] = phone
    if email_out:
        events.append(bulk.opt_out("*", Channel.EMAIL, end, method=Method.IMPORT, **end_proof))
    if sms_out and phone:
        events.append(bulk.opt_out("*", Channel.SMS, end, method=Method.IMPORT, **end_proof))
    status = "blacklisted" if email_out else "subscribed"
    content = {k: v for k, v in row.items() if k.isupper()}
    content.update(email=email.lower(), topic=ctx.topic)
    return Mapped(
        email=email,
        status=status,
        key=row.get("CONTACT ID") or email.lower(),
        contact=contact,
        events=events,
        proven=evidenced or email_out,
        content=_canonical(content),
    )


ASSENT_STATUSES = ("opted_in", "pending", "opted_out", "bounced")


def map_assent(row: dict[str, str], n: int, ctx: Context) -> Mapped:
    """Assent's own format, one fact per row: ``email``, ``topic``, ``channel``, ``status``
    (opted_in, pending, opted_out, bounced), ``occurred_at``, ``proof`` (the reference to the
    original evidence), ``ip_address``, ``doi_confirmed_at``, ``first_name``, ``locale``,
    ``source_id``."""
    email = _email(row.get("email", ""))
    status = row.get("status", "")
    if status not in ASSENT_STATUSES:
        raise Refused(f"status: one of {', '.join(ASSENT_STATUSES)}")
    topic = row.get("topic", "") or ctx.topic
    channel = row.get("channel", "") or Channel.EMAIL
    if channel not in CHANNELS:
        raise Refused("channel: unknown channel")
    if status != "bounced" and topic not in ctx.topics:
        raise Refused("topic: unknown topic")
    if status in ("opted_in", "pending") and channel not in ctx.topics[topic]:
        raise Refused("channel: the topic is not offered on this channel")
    at = _instant(row, "occurred_at", ctx)
    if at is None:
        raise Refused("occurred_at: required")
    confirmed_at = _instant(row, "doi_confirmed_at", ctx)
    their_proof = row.get("proof", "")
    proven = bool(their_proof)
    common = {"actor": "system", "collection_point": "import:assent", "proof": _reference(ctx, n)}
    if status in ("opted_in", "pending"):
        events = _opt_in_events(
            ctx,
            n,
            topic=topic,
            channel=channel,
            at=at,
            ip=_ip(row.get("ip_address", "")),
            confirmed_at=confirmed_at if status == "opted_in" else None,
            confirm_ip=None,
            proven=proven,
            evidence={"proof": their_proof} if their_proof else {},
            reference=f"{their_proof}; {_reference(ctx, n)}",
        )
        if status == "pending":
            events[0]["data"]["doi"] = Doi.PENDING
    elif status == "opted_out":
        events = [bulk.opt_out(topic, channel, at, method=Method.IMPORT, **common)]
    else:
        events = [bulk.bounce(True, at, channel=Channel.EMAIL, **common)]
    locale = row.get("locale", "") if row.get("locale", "") in ("fr", "en") else ctx.locale
    contact = _contact(email, row.get("first_name", ""), at, ctx) | {"locale": locale}
    content = {k: row.get(k, "") for k in ("email", "topic", "channel", "status", "occurred_at")}
    content.update(proof=their_proof, doi=row.get("doi_confirmed_at", ""), email=email.lower())
    return Mapped(
        email=email,
        status=status,
        key=row.get("source_id") or f"{email.lower()}|{topic}|{channel}|{status}|{at.isoformat()}",
        contact=contact,
        # An opt-in's "proven" flag matters; other facts need no proof.
        events=events,
        proven=proven or status not in ("opted_in", "pending"),
        content=_canonical(content),
    )


MAPPERS: dict[str, Callable[[dict[str, str], int, Context], Mapped]] = {
    "mailchimp": map_mailchimp,
    "brevo": map_brevo,
    "assent": map_assent,
}
REQUIRED_COLUMNS = {"mailchimp": ("Email Address",), "brevo": ("EMAIL",), "assent": ("email",)}


# --- Planning and recording -----------------------------------------------------------------------


class Outcome:
    RECORDED = "recorded"
    UNCHANGED = "unchanged"  # imported before: nothing new
    CONFLICT = "conflict"  # imported before with other content: not recorded
    REFUSED = "refused"


@dataclass
class RowPlan:
    """What a row does (or, in a dry run, would do), and why."""

    row: int
    outcome: str
    status: str = ""
    email: str = ""
    reason: str = ""
    recorded: list[dict[str, Any]] = field(default_factory=list)
    proven: bool = True
    suppressed: bool = False
    existing: bool = False

    @property
    def events(self) -> list[str]:
        """The facts recorded, in words (spelt only when someone reads them)."""
        return [_describe(e) for e in self.recorded]


@dataclass
class Summary:
    run: ImportRun | None
    sha256: str
    counts: Counter[str] = field(default_factory=Counter)
    issues: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.counts["rows"]


def _key_secret() -> bytes:
    return hmac.new(settings.SECRET_KEY.encode(), b"assent.imports.v1", hashlib.sha256).digest()


def _hmac(secret: bytes, text: str) -> str:
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


def _describe(event: dict[str, Any]) -> str:
    kind = event["type"]
    where = "/".join(x for x in (event.get("topic"), event.get("channel")) if x)
    extra = ""
    if kind == EventType.OPT_IN:
        doi = (event.get("data") or {}).get("doi")
        extra = (" double opt-in" if doi == Doi.PENDING else "") + (
            "" if event.get("proof") else " WITHOUT PROOF (not consent)"
        )
    elif kind == EventType.BOUNCE:
        extra = " hard"
    return f"{kind} {where} {event['occurred_at'].isoformat()}{extra}".replace("  ", " ")


def _check_topic(preset: str, topic: str, topics: dict[str, list[str]]) -> None:
    if preset == "assent" and not topic:
        return
    if topic not in topics:
        raise ImportError_(f"Unknown topic {topic!r}: create it first, or name another.")
    if Channel.EMAIL not in topics[topic]:
        raise ImportError_(f"The topic {topic!r} is not offered by email.")


def run(
    path: Path,
    *,
    preset: str,
    topic: str = "",
    actor: str,
    dry_run: bool = False,
    webhooks: bool = False,
    locale: str = "fr",
    filename: str = "",
    on_row: Callable[[RowPlan], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch_rows: int = BATCH_ROWS,
    import_run: ImportRun | None = None,
) -> Summary:
    """Import ``path`` (or, with ``dry_run``, say what importing it would do: nothing is written).

    ``on_row`` receives every row's plan; ``progress`` (rows done, lines in the file)."""
    if preset not in PRESETS:
        raise ImportError_(f"Unknown preset {preset!r}: one of {', '.join(PRESETS)}.")
    topics = {
        slug: list(channels) for slug, channels in Topic.objects.values_list("slug", "channels")
    }
    _check_topic(preset, topic, topics)
    sha256, lines = file_digest(path)
    now = clock.now()
    ctx = Context(preset=preset, topic=topic, sha256=sha256, locale=locale, now=now, topics=topics)
    summary = Summary(run=None, sha256=sha256)
    if not dry_run:
        if import_run is None:
            import_run = ImportRun.objects.create(
                preset=preset,
                topic=topic,
                filename=(filename or path.name)[:255],
                file_sha256=sha256,
                actor=actor[:150],
                webhooks=webhooks,
                created_at=now,
            )
        import_run.status = ImportRun.Status.RUNNING
        import_run.file_sha256 = sha256
        import_run.save(update_fields=["status", "file_sha256"])
        summary.run = import_run
    importer = _Importer(ctx, summary, dry_run=dry_run, webhooks=webhooks, on_row=on_row)
    try:
        rows = read_rows(path)
        first = True
        done = 0
        for batch in _numbered_batches(rows, batch_rows):
            if first:
                missing = [c for c in REQUIRED_COLUMNS[preset] if c not in batch[0][1]]
                if missing:
                    raise ImportError_(f"Missing column {missing[0]!r}: is this a {preset} export?")
                first = False
            importer.batch(batch)
            done += len(batch)
            if progress is not None:
                progress(done, lines)
    except Exception as exc:
        if import_run is not None:
            import_run.status = ImportRun.Status.FAILED
            import_run.error = str(exc)[:2000]
            _finish(import_run, summary)
        raise
    if import_run is not None:
        import_run.status = ImportRun.Status.DONE
        _finish(import_run, summary)
    return summary


def _finish(import_run: ImportRun, summary: Summary) -> None:
    import_run.rows = summary.rows
    import_run.counts = dict(summary.counts)
    import_run.report = summary.issues[:REPORT_KEEP]
    import_run.finished_at = clock.now()
    import_run.save(update_fields=["status", "error", "rows", "counts", "report", "finished_at"])


def _numbered_batches(
    rows: Iterable[dict[str, str]], size: int
) -> Iterator[list[tuple[int, dict[str, str]]]]:
    batch: list[tuple[int, dict[str, str]]] = []
    # Row numbers as a spreadsheet shows them: the header is row 1.
    for n, row in enumerate(rows, start=2):
        batch.append((n, row))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Importer:
    def __init__(
        self,
        ctx: Context,
        summary: Summary,
        *,
        dry_run: bool,
        webhooks: bool,
        on_row: Callable[[RowPlan], None] | None,
    ) -> None:
        self.ctx = ctx
        self.summary = summary
        self.dry_run = dry_run
        self.webhooks = webhooks
        self.on_row = on_row
        self.secret = _key_secret()
        self.mapper = MAPPERS[ctx.preset]
        self.bulk = connection.vendor == "postgresql"
        # A dry run writes nothing: the keys and addresses it has seen, to plan repeats.
        self.seen_keys: dict[str, str] = {}
        self.seen_emails: set[str] = set()

    def _report(self, plan: RowPlan) -> None:
        counts = self.summary.counts
        counts["rows"] += 1
        counts[plan.outcome] += 1
        if plan.status:
            counts[f"status:{plan.status}"] += 1
        if plan.outcome == Outcome.RECORDED:
            if not plan.proven:
                counts["unproven"] += 1
            if plan.suppressed:
                counts["suppressed"] += 1
            counts["events"] += len(plan.recorded)
            if not plan.existing:
                counts["contacts_created"] += 1
        noted = plan.outcome != Outcome.RECORDED or not plan.proven or plan.suppressed
        if noted and len(self.summary.issues) < REPORT_KEEP:
            reason = plan.reason or ("opt-in without proof: not consent" if not plan.proven else "")
            self.summary.issues.append({"row": plan.row, "outcome": plan.outcome, "reason": reason})
        if self.on_row is not None:
            self.on_row(plan)

    def batch(self, batch: list[tuple[int, dict[str, str]]]) -> None:
        ctx = self.ctx
        if settings.DEBUG:
            # DEBUG keeps the text of the last 9,000 queries, and each batch's look-ups name
            # thousands of keys: a million-row import would hold hundreds of megabytes of them.
            connection.queries_log.clear()
        mapped: list[tuple[int, Mapped]] = []
        for n, row in batch:
            try:
                mapped.append((n, self.mapper(row, n, ctx)))
            except Refused as exc:
                self._report(RowPlan(row=n, outcome=Outcome.REFUSED, reason=str(exc)))
        if not mapped:
            return
        keys = {n: _hmac(self.secret, f"{ctx.preset}:{m.key}") for n, m in mapped}
        contents = {n: _hmac(self.secret, m.content) for n, m in mapped}
        known = dict(
            ImportedRow.objects.filter(
                source=ctx.preset, key_digest__in=set(keys.values())
            ).values_list("key_digest", "content_digest")
        )
        uppers = {m.email.upper() for _, m in mapped}
        existing = {
            c.email.upper(): c
            for c in Contact.objects.annotate(u=Upper("email")).filter(u__in=uppers)
        }
        suppressed = self._suppressed(mapped)
        fresh: dict[str, list[tuple[int, Mapped]]] = {}  # new contacts, by address
        old: list[tuple[int, Mapped, Contact | None]] = []
        batch_keys: dict[str, str] = {}
        for n, m in mapped:
            key, content = keys[n], contents[n]
            before = known.get(key) or batch_keys.get(key) or self.seen_keys.get(key)
            if before is not None:
                same = before == content
                self._report(
                    RowPlan(
                        row=n,
                        outcome=Outcome.UNCHANGED if same else Outcome.CONFLICT,
                        status=m.status,
                        email=m.email,
                        reason=""
                        if same
                        else "imported before with other content: not recorded, check it",
                    )
                )
                continue
            batch_keys[key] = content
            if m.email.upper() in suppressed:
                # Never brought back as consenting: what the row says of leaving is kept.
                m.events = [
                    e
                    for e in m.events
                    if e["type"] not in (EventType.OPT_IN, EventType.DOI_CONFIRMED)
                ]
            upper = m.email.upper()
            contact = existing.get(upper)
            if contact is not None or upper in self.seen_emails:
                old.append((n, m, contact))
            else:
                fresh.setdefault(upper, []).append((n, m))
        if self.dry_run:
            self.seen_keys.update(batch_keys)
        plans = {}
        for upper, group in fresh.items():
            for i, (n, m) in enumerate(group):
                plans[n] = self._plan(n, m, existing=i > 0, suppressed=upper in suppressed)
        for n, m, _contact in old:
            plans[n] = self._plan(n, m, existing=True, suppressed=m.email.upper() in suppressed)
        if self.dry_run:
            self.seen_emails.update(fresh)
        else:
            self._write(fresh, old, keys, contents, plans)
        for n in sorted(plans):
            self._report(plans[n])

    def _plan(self, n: int, m: Mapped, *, existing: bool, suppressed: bool) -> RowPlan:
        reason = ""
        if suppressed:
            reason = "address on the suppression list: its opt-in is not recorded"
        elif not m.proven:
            reason = "opt-in without proof: imported as such, not consent"
        return RowPlan(
            row=n,
            outcome=Outcome.RECORDED,
            status=m.status,
            email=m.email,
            reason=reason,
            recorded=m.events,
            proven=m.proven or suppressed,
            suppressed=suppressed,
            existing=existing,
        )

    def _suppressed(self, mapped: list[tuple[int, Mapped]]) -> set[str]:
        """The addresses (upper-cased) of rows whose email or number is on the list."""
        if not Suppression.objects.exists():
            return set()
        digests: dict[str, str] = {}
        for _, m in mapped:
            digests[services.suppression_digest("email", m.email)] = m.email.upper()
            if m.contact.get("phone"):
                digests[services.suppression_digest("phone", m.contact["phone"])] = m.email.upper()
        listed = Suppression.objects.filter(digest__in=digests).values_list("digest", flat=True)
        return {digests[d] for d in listed}

    # --- Writing ---

    def _write(
        self,
        fresh: dict[str, list[tuple[int, Mapped]]],
        old: list[tuple[int, Mapped, Contact | None]],
        keys: dict[int, str],
        contents: dict[int, str],
        plans: dict[int, RowPlan],
    ) -> None:
        run = self.summary.run
        assert run is not None
        if self.bulk and fresh:
            self._write_bulk(fresh, keys, contents, plans)
        else:
            for group in fresh.values():
                for n, m in group:
                    old.append((n, m, None))
            old.sort(key=lambda item: item[0])
        for n, m, contact in old:
            try:
                self._write_one(n, m, contact, keys[n], contents[n])
            except ValidationError as exc:
                field_name, messages = next(iter(exc.message_dict.items()))
                plans[n] = RowPlan(
                    row=n,
                    outcome=Outcome.REFUSED,
                    status=m.status,
                    email=m.email,
                    reason=f"{field_name}: {messages[0]}" if "@" not in messages[0] else field_name,
                )

    def _write_one(
        self, n: int, m: Mapped, contact: Contact | None, key: str, content: str
    ) -> None:
        run = self.summary.run
        mute = contextlib.nullcontext() if self.webhooks else webhooks_out.muted()
        with mute, transaction.atomic():
            if contact is None:
                contact = Contact.objects.filter(email__iexact=m.email).first()
            if contact is None:
                fields = dict(m.contact)
                contact = services.contact_create(
                    email=fields["email"],
                    phone=fields.get("phone") or None,
                    first_name=fields.get("first_name", ""),
                    locale=fields.get("locale", "fr"),
                    collected_at=min(fields["collected_at"], clock.now()),
                )
            for event in m.events:
                _record(contact, event)
            ImportedRow.objects.create(
                run=run,
                row=n,
                contact=contact,
                source=self.ctx.preset,
                key_digest=key,
                content_digest=content,
                proven=m.proven,
            )

    def _write_bulk(
        self,
        fresh: dict[str, list[tuple[int, Mapped]]],
        keys: dict[int, str],
        contents: dict[int, str],
        plans: dict[int, RowPlan],
    ) -> None:
        groups = list(fresh.values())
        items = []
        for group in groups:
            contact = dict(group[0][1].contact)
            events = [e for _, m in group for e in m.events]
            items.append((contact, events))
        run = self.summary.run
        assert run is not None
        webhooks = self.webhooks

        def written(contact_ids: list[int]) -> None:
            rows = [
                (run.pk, n, contact_id, self.ctx.preset, keys[n], contents[n], m.proven)
                for contact_id, group in zip(contact_ids, groups, strict=True)
                for n, m in group
            ]
            _copy_imported_rows(rows)
            if webhooks:
                _replay_webhooks(contact_ids)

        try:
            bulk.load(items, batch_size=len(items) + 1, on_batch=written)
        except bulk.BulkError as exc:
            raise ImportError_(f"rows {min(plans)} to {max(plans)}: {exc}") from exc


def _record(contact: Contact, e: dict[str, Any]) -> None:
    """One event dict (``consents.bulk``'s shape) through the services."""
    proof = services.Proof(
        method=e.get("method") or Method.IMPORT,
        actor=e.get("actor") or "system",
        collection_point=e.get("collection_point", ""),
        reference=e.get("proof", ""),
        ip_address=e.get("ip_address"),
        details=e.get("details") or {},
    )
    kind, at, data = e["type"], e["occurred_at"], e.get("data") or {}
    if kind == EventType.OPT_IN:
        services.consent_grant(
            contact=contact,
            topic=e["topic"],
            channel=e["channel"],
            proof=proof,
            doi=data.get("doi", Doi.NONE),
            occurred_at=at,
        )
    elif kind == EventType.DOI_CONFIRMED:
        services.consent_confirm(
            contact=contact, topic=e["topic"], channel=e["channel"], proof=proof, occurred_at=at
        )
    elif kind == EventType.OPT_OUT:
        services.consent_withdraw(
            contact=contact, topic=e["topic"], channel=e["channel"], proof=proof, occurred_at=at
        )
    elif kind == EventType.BOUNCE:
        services.bounce_record(
            contact=contact, hard=data.get("hard", True), proof=proof, channel=e["channel"],
            occurred_at=at,
        )  # fmt: skip
    else:  # pragma: no cover - the mappers make no other kind
        raise ValueError(kind)


def _copy_imported_rows(rows: list[tuple[Any, ...]]) -> None:
    columns = ["run_id", "row", "contact_id", "source", "key_digest", "content_digest", "proven"]
    with (
        connection.connection.cursor() as cursor,
        cursor.copy(f"COPY {ImportedRow._meta.db_table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def _replay_webhooks(contact_ids: list[int]) -> None:
    from consents.models import Event

    contacts = {c.pk: c for c in Contact.objects.filter(pk__in=contact_ids)}
    events = Event.objects.filter(contact_id__in=contact_ids).order_by("contact_id", "seq")
    webhooks_out.events_recorded((e, contacts[e.contact_id]) for e in events.iterator())


def report_header() -> list[str]:
    return ["row", "outcome", "status", "email", "reason", "events"]


def report_line(plan: RowPlan) -> list[str]:
    return [
        str(plan.row),
        plan.outcome,
        plan.status,
        plan.email,
        plan.reason,
        "; ".join(plan.events),
    ]


def write_report(stream: IO[str]) -> Callable[[RowPlan], None]:
    writer = csv.writer(stream)
    writer.writerow(report_header())
    return lambda plan: writer.writerow(report_line(plan))


def unproven_contacts(import_run: ImportRun) -> Iterator[tuple[int, str, str]]:
    """The contacts an import brought in with an opt-in but no proof of it: (row, public id,
    address), for a repermission campaign."""
    rows = (
        ImportedRow.objects.filter(run=import_run, proven=False)
        .select_related("contact")
        .order_by("row")
    )
    for r in rows.iterator(chunk_size=2000):
        yield r.row, r.contact.public_id, r.contact.email or ""


# --- Asynchronous imports (the admin's confirmation, the API) -----------------------------------


@transaction.atomic
def import_queue(
    *,
    path: Path,
    preset: str,
    topic: str,
    actor: str,
    webhooks: bool = False,
    filename: str = "",
    locale: str = "fr",
) -> ImportRun:
    """Record an import to run, and run it in a worker once this transaction commits; its record
    (``ImportRun.status``, counts, report) says how it went. ``path`` is deleted afterwards."""
    if preset not in PRESETS:
        raise ValidationError({"preset": f"One of {', '.join(PRESETS)}."})
    topics = {
        slug: list(channels) for slug, channels in Topic.objects.values_list("slug", "channels")
    }
    try:
        _check_topic(preset, topic, topics)
    except ImportError_ as exc:
        raise ValidationError({"topic": str(exc)}) from exc
    import_run = ImportRun.objects.create(
        preset=preset,
        topic=topic,
        filename=(filename or path.name)[:255],
        file_sha256=file_digest(path)[0],
        actor=actor[:150],
        webhooks=webhooks,
        created_at=clock.now(),
    )
    options = {"locale": locale}
    transaction.on_commit(lambda: _queue(import_run.pk, str(path), options))
    return import_run


def _queue(run_id: int, path: str, options: dict[str, Any]) -> None:
    from consents.tasks import import_contacts

    import_contacts.apply_async(args=[run_id, path, options], retry=False)


def import_execute(*, run_id: int, path: Path, locale: str = "fr") -> ImportRun:
    """Run a queued import (the worker's side of ``import_queue``)."""
    import_run = ImportRun.objects.get(pk=run_id)
    if import_run.status != ImportRun.Status.QUEUED:
        return import_run  # run already (a redelivered task)
    try:
        run(
            path,
            preset=import_run.preset,
            topic=import_run.topic,
            actor=import_run.actor,
            webhooks=import_run.webhooks,
            locale=locale,
            import_run=import_run,
        )
    except (ImportError_, bulk.BulkError, OSError) as exc:
        import_run.refresh_from_db()
        if import_run.status != ImportRun.Status.FAILED:
            import_run.status = ImportRun.Status.FAILED
            import_run.error = str(exc)[:2000]
            import_run.save(update_fields=["status", "error"])
    finally:
        path.unlink(missing_ok=True)
    import_run.refresh_from_db()
    return import_run


# --- For the integration API: store an upload, read an import's status ---------------------------

SUFFIXES = (".csv", ".xlsx")


def import_store(*, chunks: Iterable[bytes], filename: str) -> Path:
    """Keep an uploaded file until its import runs (``import_queue`` deletes it afterwards),
    named by its SHA-256 under ``VAR_DIR/imports``."""
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValidationError({"file": "Give a .csv or .xlsx file."})
    folder = Path(settings.VAR_DIR) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    partial = folder / f"upload-{clock.now().timestamp()}-{id(chunks)}{suffix}"
    with partial.open("wb") as f:
        for chunk in chunks:
            digest.update(chunk)
            f.write(chunk)
    stored = folder / f"{digest.hexdigest()}{suffix}"
    partial.replace(stored)
    return stored


def import_as_dict(import_run: ImportRun) -> dict[str, Any]:
    """An import's status resource: where it is, what it recorded, what it refused (by row
    number and reason: the report holds no address)."""
    return {
        "id": import_run.pk,
        "status": import_run.status,
        "preset": import_run.preset,
        "topic": import_run.topic or None,
        "file_sha256": import_run.file_sha256,
        "webhooks": import_run.webhooks,
        "created_at": import_run.created_at.isoformat(),
        "finished_at": import_run.finished_at.isoformat() if import_run.finished_at else None,
        "rows": import_run.rows,
        "counts": import_run.counts,
        "issues": import_run.report,
        "error": import_run.error or None,
    }
