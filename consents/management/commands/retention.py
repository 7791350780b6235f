"""``manage.py retention [--dry-run]``: what the daily retention task does, by hand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from consents import retention


class Command(BaseCommand):
    help = (
        "Send the repermission email to contacts within 30 days of expiry (once), and erase "
        "contacts past expiry. --dry-run lists who would be affected and why, changing nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Report only; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["dry_run"]:
            done = retention.run()
            if done.get("skipped"):
                self.stdout.write("Another retention run is under way: nothing done.")
                return
            self.stdout.write(f"Asked {done['asked']}, erased {done['erased']}.")
            return
        plan = retention.plan()
        self.stdout.write(f"Dry run as of {plan.now.isoformat()}: nothing is changed.")
        self.stdout.write(f"Would ask ({len(plan.repermission)}):")
        for _, public_id, reason in plan.repermission:
            self.stdout.write(f"  ask    {public_id}  {reason}")
        self.stdout.write(f"Would erase ({len(plan.erase)}):")
        for _, public_id, expired in plan.erase:
            self.stdout.write(
                f"  erase  {public_id}  RETENTION_EXPIRED since {expired.isoformat()}"
            )
