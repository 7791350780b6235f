"""``manage.py import_contacts FILE --preset mailchimp|brevo|assent [--dry-run]``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from consents import imports


class Command(BaseCommand):
    help = (
        "Import contacts and their consent history from another tool's export (CSV or XLSX), each "
        "fact at its original instant, with the file's hash and row as proof. Sends no email, and "
        "no webhook unless --webhooks. --dry-run says what would be recorded, row by row, and "
        "changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--preset", required=True, choices=imports.PRESETS)
        parser.add_argument(
            "--topic",
            default="",
            help="The topic the list's subscribers consented to (mailchimp, brevo; for assent, "
            "the default of rows without one).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Change nothing; report.")
        parser.add_argument(
            "--webhooks",
            action="store_true",
            help="Send the imported events to the webhook endpoints (not sent by default).",
        )
        parser.add_argument("--locale", default="fr", choices=("fr", "en"))
        parser.add_argument(
            "--report", type=Path, help="Write every row's outcome to this CSV file."
        )
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument("--batch-rows", type=int, default=imports.BATCH_ROWS)
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="Processes that read, map and write their own share of the file (PostgreSQL), "
            "split by address, each committing its batches on its own; the same outcomes and "
            "report as one process. Default: one per CPU for a file of "
            f"{imports.AUTO_LINES:,} lines or more, else 1.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        report_file = options["report"].open("w", newline="") if options["report"] else None
        on_row = imports.write_report(report_file) if report_file else None
        shown: list[imports.RowPlan] = []
        dry_run = options["dry_run"]

        def remember(plan: imports.RowPlan) -> None:
            if on_row is not None:
                on_row(plan)
            if len(shown) < 50 and (
                dry_run or plan.outcome != imports.Outcome.RECORDED or plan.reason
            ):
                shown.append(plan)

        started = time.monotonic()
        progress = None if options["no_progress"] else _ProgressBar(self.stderr)
        try:
            summary = imports.run(
                path,
                preset=options["preset"],
                topic=options["topic"],
                actor="command:import_contacts",
                dry_run=dry_run,
                webhooks=options["webhooks"],
                locale=options["locale"],
                on_row=remember,
                progress=progress,
                batch_rows=options["batch_rows"],
                workers=options["workers"],
            )
        except imports.ImportError_ as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if progress is not None:
                progress.close()
            if report_file is not None:
                report_file.close()
        elapsed = time.monotonic() - started
        out = self.stdout
        title = "Dry run: nothing was changed." if dry_run else f"Imported as {summary.run}."
        out.write(title)
        out.write(f"File SHA-256: {summary.sha256}")
        for plan in shown:
            events = "; ".join(plan.events)
            line = f"  row {plan.row}: {plan.outcome}"
            line += f" ({plan.reason})" if plan.reason else ""
            line += f": {events}" if events else ""
            out.write(line)
        if len(shown) == 50:
            out.write("  ... (every row is in --report FILE)")
        for name, value in sorted(summary.counts.items()):
            out.write(f"{name:>24}: {value}")
        rate = summary.rows / elapsed if elapsed else 0
        out.write(f"{summary.rows} rows in {elapsed:.1f} s ({rate:,.0f} rows/s)")


class _ProgressBar:
    """rows done / lines in the file, redrawn at most every half second."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.last = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.5 and done < total:
            return
        self.last = now
        total = max(total, done, 1)
        width = 30
        filled = int(width * done / total)
        bar = f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} rows"
        self.stream.write(bar, ending="")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("")
