from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, connections

from consents import anchors
from consents.ledger import Verification, ledger_bounds, split_range, verify_chains
from consents.models import Contact

# Ranges of contact ids per worker process: more than one, so that a worker that finishes early
# (its contacts have shorter histories, or the machine gave it less CPU) takes the next range
# instead of waiting for the slowest one.
RANGES_PER_WORKER = 4
# Problems named one by one; beyond, they are counted.
SHOWN = 50


def _verify_in_child(bounds: tuple[int, int]) -> Verification:
    connections.close_all()  # a forked child must open its own connection
    try:
        return verify_chains(*bounds)
    finally:
        connections.close_all()


class Command(BaseCommand):
    help = (
        "Walk every contact's hash chain, compare each with its recorded head, and check the "
        "latest ledger anchor. Name every broken chain, deleted tail, deleted chain and anchor "
        "mismatch. Exit 1 if any."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--workers",
            type=int,
            default=0,
            help="Processes (PostgreSQL only; default: one per CPU).",
        )
        parser.add_argument(
            "--anchors",
            metavar="FILE",
            help="Anchors kept outside (export_anchors): each must still be in the database as "
            "exported, and the latest must match the ledger.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        outside = self._outside(options["anchors"]) if options["anchors"] else None
        started = time.monotonic()
        bounds = ledger_bounds()
        result = self._walk(bounds, options["workers"]) if bounds else Verification()
        check = anchors.latest_check()
        kept_check, kept_problems = anchors.outside_check(outside) if outside else (None, [])
        elapsed = time.monotonic() - started
        if bounds is None and check is None and outside is None:
            self.stdout.write("The ledger is empty: nothing to verify.")
            return
        failed = False
        if result.problems:
            failed = True
            self._name(result)
        for found in (check, kept_check):
            if found is not None and not found.ok:
                failed = True
                for problem in found.problems:
                    self.stderr.write(f"ANCHOR: {found.name}: {problem}.")
        for problem in kept_problems:
            failed = True
            self.stderr.write(f"ANCHOR: {problem}.")
        if failed:
            raise SystemExit(1)
        self.stdout.write(
            f"OK: {result.checked} events in {result.chains} chains verified in {elapsed:.1f} s."
        )
        self.stdout.write(f"Heads: every chain ends at its recorded head ({result.heads}).")
        if check is None:
            self.stdout.write(
                "Anchor: none yet. `manage.py anchor_ledger` (hourly in Celery beat) signs the "
                "chain heads, so that a deleted or rewritten history shows."
            )
        else:
            a = check.anchor
            self.stdout.write(
                f"Anchor: {check.name} ({a.chains} chains, {a.events} events) is signed with "
                f"this deployment's key and matches the ledger; {check.linked} anchors linked."
            )
        if kept_check is not None:
            self.stdout.write(
                f"Anchors kept outside: {len(outside['anchors'])} still in the database as "
                f"exported; the latest, {kept_check.name}, matches the ledger."
            )

    def _outside(self, path: str) -> dict[str, Any]:
        try:
            with open(path, encoding="utf-8") as kept:
                data = json.load(kept)
            for item in data["anchors"]:
                anchors.anchor_from_json(item)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CommandError(f"--anchors {path}: {exc}") from exc
        if data.get("format") != anchors.FORMAT:
            raise CommandError(f"--anchors {path}: not a {anchors.FORMAT} export")
        return data

    def _walk(self, bounds: tuple[int, int], workers: int) -> Verification:
        workers = workers or os.cpu_count() or 1
        if connection.vendor != "postgresql":
            workers = 1
        ranges = split_range(*bounds, 1 if workers == 1 else workers * RANGES_PER_WORKER)
        if workers == 1:
            return Verification.combine(verify_chains(*r) for r in ranges)
        connections.close_all()
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return Verification.combine(pool.map(_verify_in_child, ranges))

    def _name(self, result: Verification) -> None:
        shown = result.problems[:SHOWN]
        public_ids = dict(
            Contact.objects.filter(pk__in={p["contact_id"] for p in shown}).values_list(
                "pk", "public_id"
            )
        )
        for p in shown:
            event = f"event #{p['seq']}"
            if p["event_id"] is not None:
                event += f" (id {p['event_id']})"
            public_id = public_ids.get(p["contact_id"], "(deleted)")
            self.stderr.write(
                f"BROKEN: contact {public_id} (id {p['contact_id']}), {event}: {p['problem']}."
            )
        if result.problem_count > len(shown):
            self.stderr.write(f"... and {result.problem_count - len(shown)} more.")
