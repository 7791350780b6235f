"""Move the email service's tracking events from the webhook's inbox into the ledger."""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand

from preferences import tracking


class Command(BaseCommand):
    help = (
        "Move the email service's tracking events from the webhook's inbox into the ledger, "
        "in batches, until the inbox is empty (or, with --follow, forever)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--follow", action="store_true", help="keep draining as events arrive")
        parser.add_argument(
            "--stall-after",
            type=int,
            default=None,
            help="(tests) stop for an hour after building that many facts of the first batch, "
            "inside its transaction, saying so on standard output",
        )

    def handle(self, *args: Any, batch_size: int | None, follow: bool, stall_after: int | None,
               **options: Any) -> None:  # fmt: skip
        moved = 0
        if stall_after is not None:

            def stall() -> None:
                self.stdout.write("stalled mid-batch")
                sys.stdout.flush()
                self.stdout.flush()
                time.sleep(3600)

            moved += tracking.drain(batch_size, stall_after=stall_after, stall=stall)
        while True:
            moved += tracking.drain_all(batch_size)
            if not follow:
                break
            time.sleep(0.5)
        self.stdout.write(f"{moved} tracking events moved")
