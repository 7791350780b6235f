from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from consents import anchors


class Command(BaseCommand):
    help = (
        "Write the ledger anchors as JSON (oldest first), to be kept outside the database: "
        "whoever holds them can tell whether the ledger was rewritten since."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", type=int, help="Only the anchors after this anchor id.")
        parser.add_argument("--output", "-o", help="A file to write (default: standard output).")

    def handle(self, *args: Any, **options: Any) -> None:
        data = anchors.anchors_export(since=options["since"])
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as out:
                out.write(text)
            self.stderr.write(f"{len(data['anchors'])} anchors written to {options['output']}.")
        else:
            self.stdout.write(text, ending="")
