from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from consents import anchors
from consents.ledger import iso


def _instant(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"--at: not an ISO 8601 instant: {text!r}") from exc


class Command(BaseCommand):
    help = (
        "Sign the heads of every chain of the ledger (as of LEDGER_ANCHOR_LAG ago) into a new "
        "anchor; also hourly in Celery beat. Exit 1 if the previous anchor no longer matches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--at", type=_instant, help="The instant covered (ISO 8601, with offset)."
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Anchor even though the previous anchor no longer matches the ledger (once the "
            "mismatch has been looked into, or after LEDGER_ANCHOR_KEY was changed).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            anchor = anchors.anchor_create(at=options["at"], force=options["force"])
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        except anchors.AnchorRefused as exc:
            for problem in exc.check.problems:
                self.stderr.write(f"ANCHOR: {exc.check.name}: {problem}.")
            self.stderr.write("No new anchor: it would sign over this change (see --force).")
            raise SystemExit(1) from exc
        self.stdout.write(
            f"Anchor #{anchor.pk} of {iso(anchor.at)}: {anchor.chains} chains, "
            f"{anchor.events} events, root {anchor.root}."
        )
