"""Recompute the projections from the ledger: all of them, or those computed under other rules or
settings (after a change of RETENTION_YEARS, a link lifetime, the generic mailbox list, or a new
version of the rules engine)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from consents import projections, rules


class Command(BaseCommand):
    help = (
        "Recompute every contact's projections from the ledger, or with --stale only those "
        "computed under other rules or settings."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--stale",
            action="store_true",
            help="Only contacts whose projections were computed under other rules or settings.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        s = rules.RuleSettings.from_django()
        step = 1000

        def progress(done: int, total: int) -> None:
            if options["verbosity"] and (done % step == 0 or done == total):
                self.stdout.write(f"  {done}/{total}")

        count = projections.projections_rebuild(stale_only=options["stale"], s=s, progress=progress)
        self.stdout.write(
            self.style.SUCCESS(
                f"Recomputed the projections of {count} contact(s) "
                f"(rules {rules.RULES_VERSION}, fingerprint {s.fingerprint()})."
            )
        )
