"""Planning and writing an import: each row's outcome (recorded, unchanged, conflict, refused)
and why, the suppression list, then the writing itself.

New contacts go through ``consents.bulk`` on PostgreSQL (chained, with their heads, ``COPY``, one
transaction per batch, in bounded memory); contacts already here, and every contact on SQLite,
through ``consents.services``, one row per transaction.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models.functions import Upper

from consents import bulk, clock, copying, services, webhooks_out
from consents.collector import collecting_less
from consents.imports import shares
from consents.imports.presets import (
    MAPPERS,
    PRESETS,
    REQUIRED_COLUMNS,
    Context,
    Mapped,
    Refused,
    check_topic,
    topic_channels,
)
from consents.imports.reading import ImportError_, file_digest, read_rows
from consents.models import Contact, ImportedRow, ImportRun, Suppression
from consents.vocab import Doi, EventType, Method

BATCH_ROWS = 10_000
# Issues kept on the import's record (by row number and reason): the report file has them all.
REPORT_KEEP = 1000


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
    # The facts recorded, already in words (a plan made by a worker process of the import,
    # which sends the words rather than the facts); None: spelt from ``recorded``.
    described: list[str] | None = None

    @property
    def events(self) -> list[str]:
        """The facts recorded, in words (spelt only when someone reads them)."""
        if self.described is not None:
            return list(self.described)
        return [_describe(e) for e in self.recorded]

    @property
    def event_count(self) -> int:
        return len(self.described) if self.described is not None else len(self.recorded)


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
    return hmac.digest(secret, text.encode(), "sha256").hex()  # hmac.new's hexdigest, one call


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
    workers: int | None = 1,
) -> Summary:
    """Import ``path`` (or, with ``dry_run``, say what importing it would do: nothing is written).

    ``on_row`` receives every row's plan; ``progress`` (rows done, lines in the file).
    ``workers`` > 1 (PostgreSQL, outside ``atomic``): that many processes, each reading, mapping
    and writing its own share of the file, split by address (``shares``: the same outcomes,
    report and rows remembered as one process), each committing its batches on its own; for a
    file that cannot be split so, each batch's new contacts are chained and written by that many
    processes. ``None``: one process per CPU for a file of ``shares.AUTO_LINES`` lines or more
    where processes can be started, else one."""
    if preset not in PRESETS:
        raise ImportError_(f"Unknown preset {preset!r}: one of {', '.join(PRESETS)}.")
    topics = topic_channels()
    check_topic(preset, topic, topics)
    sha256, lines = file_digest(path)
    automatic = workers is None
    if workers is None:
        workers = shares.automatic(lines, dry_run=dry_run)
    now = clock.now()
    ctx = Context(preset=preset, topic=topic, sha256=sha256, locale=locale, now=now, topics=topics)
    summary = Summary(run=None, sha256=sha256)
    if not dry_run:
        if import_run is None:
            import_run = import_run_create(
                path=path,
                preset=preset,
                topic=topic,
                actor=actor,
                webhooks=webhooks,
                filename=filename,
                sha256=sha256,
                created_at=now,
            )
        import_run.status = ImportRun.Status.RUNNING
        import_run.file_sha256 = sha256
        import_run.save(update_fields=["status", "file_sha256"])
        summary.run = import_run
    importer = _Importer(
        ctx, summary, dry_run=dry_run, webhooks=webhooks, on_row=on_row, workers=workers
    )
    # Millions of short-lived dicts and lists, none in a cycle (``collecting_less``).
    with collecting_less():
        try:
            if _run_in_shares(importer, path, dry_run, workers, batch_rows, progress, lines):
                rows: Iterable[dict[str, str]] = ()
            else:
                if automatic:
                    importer.workers = 1  # a file that cannot be split: one process, as it was
                rows = read_rows(path)
            first = True
            done = 0
            for batch in _numbered_batches(rows, batch_rows):
                if first:
                    missing = [c for c in REQUIRED_COLUMNS[preset] if c not in batch[0][1]]
                    if missing:
                        raise ImportError_(
                            f"Missing column {missing[0]!r}: is this a {preset} export?"
                        )
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


def _run_in_shares(
    importer: _Importer,
    path: Path,
    dry_run: bool,
    workers: int,
    batch_rows: int,
    progress: Callable[[int, int], None] | None,
    lines: int,
) -> bool:
    """``workers`` processes, each reading, mapping and writing its own share of the file
    (``shares``), if the file splits; False if the import is to run here."""
    if (
        workers < 2
        or dry_run
        or connection.vendor != "postgresql"
        or connection.in_atomic_block
        or importer.summary.run is None
    ):
        return False
    rows = shares.plan(path, importer.ctx.preset, workers)
    if rows is None:
        return False

    def plan_of(*fields: Any) -> RowPlan:
        row, outcome, status, email, reason, proven, suppressed, existing, described = fields
        return RowPlan(
            row=row, outcome=outcome, status=status, email=email, reason=reason,
            proven=proven, suppressed=suppressed, existing=existing, described=described,
        )  # fmt: skip

    shares.run(
        importer, path, rows=rows, batch_rows=batch_rows, make_plan=plan_of,
        progress=progress, lines=lines,
    )  # fmt: skip
    return True


def import_run_create(
    *,
    path: Path,
    preset: str,
    topic: str,
    actor: str,
    webhooks: bool,
    filename: str,
    sha256: str,
    created_at: datetime,
) -> ImportRun:
    """The record of one import (run now, or queued for a worker)."""
    return ImportRun.objects.create(
        preset=preset,
        topic=topic,
        filename=(filename or path.name)[:255],
        file_sha256=sha256,
        actor=actor[:150],
        webhooks=webhooks,
        created_at=created_at,
    )


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
        workers: int = 1,
    ) -> None:
        self.ctx = ctx
        self.workers = max(1, workers)
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
        # In a worker process of the import (``shares``): the plans of the batch, for the main
        # process, with the step of ``batch`` that reported each (its order of reporting).
        self.sink: list[tuple[Any, ...]] | None = None
        self.phase = 0

    def _report(self, plan: RowPlan) -> None:
        if self.sink is not None:  # a worker process: the main process reports
            self.sink.append(
                (
                    self.phase, plan.row, plan.outcome, plan.status, plan.email, plan.reason,
                    plan.proven, plan.suppressed, plan.existing, plan.events,
                )
            )  # fmt: skip
            return
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
            counts["events"] += plan.event_count
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
        self.phase = 0
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
        known = _known_rows(ctx.preset, set(keys.values()))
        uppers = {m.email.upper() for _, m in mapped}
        existing = {c.email.upper(): c for c in _contacts_by_upper(uppers)}
        suppressed = self._suppressed(mapped)
        fresh: dict[str, list[tuple[int, Mapped]]] = {}  # new contacts, by address
        old: list[tuple[int, Mapped, Contact | None]] = []
        batch_keys: dict[str, str] = {}
        self.phase = 1
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
        self.phase = 2
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
        listed = Suppression.objects.filter(digest__any_of=digests).values_list("digest", flat=True)
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
        if self.workers > 1 and len(fresh) > 1 and not connection.in_atomic_block:
            self._write_bulk_parallel(fresh, keys, contents, plans)
            return
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
            # The mappers' addresses are normalize_email's (presets._email).
            bulk.load(items, batch_size=len(items) + 1, on_batch=written, emails_normalized=True)
        except bulk.BulkError as exc:
            raise ImportError_(f"rows {min(plans)} to {max(plans)}: {exc}") from exc

    def _write_bulk_parallel(
        self,
        fresh: dict[str, list[tuple[int, Mapped]]],
        keys: dict[int, str],
        contents: dict[int, str],
        plans: dict[int, RowPlan],
    ) -> None:
        """``_write_bulk`` in ``self.workers`` processes (``bulk.load_parallel``): the new
        contacts split by a hash of their address, each part with the rows remembered for it."""
        run = self.summary.run
        assert run is not None
        parts: list[list[list[tuple[int, Mapped]]]] = [[] for _ in range(self.workers)]
        for upper, group in fresh.items():
            parts[zlib.crc32(upper.encode()) % self.workers].append(group)
        loaders, options = [], []
        for groups in parts:
            if not groups:
                continue
            items = [
                (dict(group[0][1].contact), [e for _, m in group for e in m.events])
                for group in groups
            ]
            remembered = [
                [(n, keys[n], contents[n], m.proven) for n, m in group] for group in groups
            ]
            loaders.append(functools.partial(list, items))
            on_batch = functools.partial(
                _written, run.pk, self.ctx.preset, remembered, self.webhooks
            )
            options.append({"on_batch": on_batch, "batch_size": len(items) + 1})
        try:
            bulk.load_parallel(loaders, part_options=options, emails_normalized=True)
        except bulk.BulkError as exc:
            raise ImportError_(f"rows {min(plans)} to {max(plans)}: {exc}") from exc


# The look-ups of a batch name thousands of values: ``__any_of`` (``consents.lookups``), one array
# parameter on PostgreSQL rather than one placeholder each.


def _known_rows(source: str, digests: set[str]) -> dict[str, str]:
    """key digest -> content digest of the rows of ``source`` imported before, among these."""
    return dict(
        ImportedRow.objects.filter(source=source, key_digest__any_of=digests).values_list(
            "key_digest", "content_digest"
        )
    )


def _contacts_by_upper(uppers: set[str]) -> list[Contact]:
    """The contacts whose address, upper-cased by the database, is one of these."""
    return list(Contact.objects.annotate(u=Upper("email")).filter(u__any_of=uppers))


def _written(
    run_pk: int,
    source: str,
    remembered: list[list[tuple[int, str, str, bool]]],
    webhooks: bool,
    contact_ids: list[int],
) -> None:
    """In a part's transaction: the rows of its new contacts, remembered for idempotency."""
    _copy_imported_rows(
        [
            (run_pk, n, contact_id, source, key, content, proven)
            for contact_id, group in zip(contact_ids, remembered, strict=True)
            for n, key, content, proven in group
        ]
    )
    if webhooks:
        _replay_webhooks(contact_ids)


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
    """The rows remembered for idempotency, in one binary ``COPY`` (as ``consents.bulk`` writes)."""
    columns = ["run_id", "row", "contact_id", "source", "key_digest", "content_digest", "proven"]
    table = ImportedRow._meta.db_table
    with connection.connection.cursor() as cursor:
        types = copying.column_types(cursor, table, columns)
        with copying.copy_in(cursor, table, columns, types) as copy:
            for row in rows:
                copy.write_row(row)


def _replay_webhooks(contact_ids: list[int]) -> None:
    from consents.models import Event

    contacts = {c.pk: c for c in Contact.objects.filter(pk__any_of=contact_ids)}
    events = Event.objects.filter(contact_id__any_of=contact_ids).order_by("contact_id", "seq")
    webhooks_out.events_recorded((e, contacts[e.contact_id]) for e in events.iterator())
