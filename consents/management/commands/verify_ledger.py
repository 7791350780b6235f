from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, connections
from django.db.models import Max, Min

from consents.ledger import verify_range
from consents.models import Contact, Event


def _verify_in_child(bounds: tuple[int, int]) -> tuple[int, dict[str, Any] | None]:
    connections.close_all()  # a forked child must open its own connection
    try:
        return verify_range(*bounds)
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
        step = -(-(hi - lo) // workers)
        ranges = [(start, min(start + step, hi)) for start in range(lo, hi, step)]
        if workers == 1:
            results = [verify_range(*r) for r in ranges]
        else:
            connections.close_all()
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(_verify_in_child, ranges))
        checked = sum(count for count, _ in results)
        broken = [b for _, b in results if b is not None]
        elapsed = time.monotonic() - started
        if broken:
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
        self.stdout.write(
            f"OK: {checked} events in {Event.objects.values('contact_id').distinct().count()} "
            f"chains verified in {elapsed:.1f} s."
        )
