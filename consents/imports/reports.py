"""What an import tells afterwards: its report file (one line per row), the contacts it brought
in without proof of their opt-in, and its status resource for the API."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from typing import IO, Any

from consents.imports.importer import RowPlan
from consents.models import ImportedRow, ImportRun


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
