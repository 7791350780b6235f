from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, connections
from django.db.models import Max, Min

from consents.ledger import Verification, verify_chains
from consents.models import Contact, Event

# Ranges of contact ids per worker process: more than one, so that a worker that finishes early
# (its contacts have shorter histories, or the machine gave it less CPU) takes the next range
# instead of waiting for the slowest one.
RANGES_PER_WORKER = 4


def _verify_in_child(bounds: tuple[int, int]) -> Verification:
    connections.close_all()  # a forked child must open its own connection
    try:
        return verify_chains(*bounds)
    finally:
        connections.close_all()


class Command(BaseCommand):
    help = "Walk every contact's hash chain and name the first broken link. Exit 1 if any."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--workers",
            type=int,
            default=0,
            help="Processes (PostgreSQL only; default: one per CPU).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        bounds = Event.objects.aggregate(lo=Min("contact_id"), hi=Max("contact_id"))
        if bounds["lo"] is None:
            self.stdout.write("The ledger is empty: nothing to verify.")
            return
        lo, hi = bounds["lo"], bounds["hi"] + 1
        workers = options["workers"] or os.cpu_count() or 1
        if connection.vendor != "postgresql":
            workers = 1
        pieces = 1 if workers == 1 else workers * RANGES_PER_WORKER
        step = -(-(hi - lo) // pieces)
        ranges = [(start, min(start + step, hi)) for start in range(lo, hi, step)]
        if workers == 1:
            results = [verify_chains(*r) for r in ranges]
        else:
            connections.close_all()
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(_verify_in_child, ranges))
        checked = sum(r.checked for r in results)
        chains = sum(r.chains for r in results)  # the ranges do not overlap: each contact once
        broken = [r.broken for r in results if r.broken is not None]
        elapsed = time.monotonic() - started
        if broken:
            # Each range stops at its own first broken link; the ranges are ordered by contact.
            first = min(broken, key=lambda b: (b["contact_id"], b["seq"]))
            public_id = (
                Contact.objects.filter(pk=first["contact_id"])
                .values_list("public_id", flat=True)
                .first()
            )
            self.stderr.write(
                f"BROKEN: contact {public_id} (id {first['contact_id']}), event #{first['seq']} "
                f"(id {first['event_id']}): {first['problem']}."
            )
            raise SystemExit(1)
        self.stdout.write(f"OK: {checked} events in {chains} chains verified in {elapsed:.1f} s.")
