from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from consents.casebook import CasebookError, load, run


class Command(BaseCommand):
    help = (
        "Run a case book (CASEBOOK.md) through decide() and the audience query. "
        "Exit 0: all pass; 1: a case fails or the two disagree; 2: malformed file; "
        "3: the database is not migrated."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--json", action="store_true", help="One JSON object per line.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            book = load(options["file"])
        except CasebookError as exc:
            self.stderr.write(f"malformed case book: {exc}")
            raise SystemExit(2) from exc
        if _unapplied_migrations():
            self.stderr.write("The database is not migrated: run `python manage.py migrate` first.")
            raise SystemExit(3)
        passed = failed = 0
        as_json = options["json"]
        if not as_json:
            self.stdout.write(f"{'':4} {'case':48} {'expected':28} {'decide':28} audience")
        for result in run(book):
            passed += result.ok
            failed += not result.ok
            if as_json:
                line = {
                    "id": result.id,
                    "allowed": result.allowed,
                    "reason": result.reason,
                    "audience": result.audience,
                    "ok": result.ok,
                }
                self.stdout.write(json.dumps(line))
                continue
            expected = f"{'allow' if result.expect_allowed else 'deny'} {result.expect_reason}"
            got = (
                f"{'allow' if result.allowed else 'deny'} {result.reason}" if result.reason else "-"
            )
            audience = "-" if result.audience is None else ("in" if result.audience else "out")
            mark = "ok" if result.ok else "FAIL"
            self.stdout.write(f"{mark:4} {result.id:48} {expected:28} {got:28} {audience}")
            if result.error:
                self.stdout.write(f"     {result.error}")
        summary = {"cases": passed + failed, "passed": passed, "failed": failed}
        if as_json:
            self.stdout.write(json.dumps({"summary": summary}))
        else:
            self.stdout.write(f"{passed + failed} cases: {passed} passed, {failed} failed")
        if failed:
            raise SystemExit(1)


def _unapplied_migrations() -> bool:
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))
