"""``manage.py audience``: the audience of a message, as CSV or NDJSON, streamed.

The same query as the API's ``GET /api/v1/audiences`` (``consents.audience.audience``), written
row by row: the whole audience is never in memory.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from consents import clock, rules
from consents.audience import EXPORT_COLUMNS, audience
from consents.vocab import CHANNELS, PURPOSES


class Command(BaseCommand):
    help = "Write the audience of a message (contacts it may be sent to) as CSV or NDJSON."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--channel", required=True, choices=CHANNELS)
        parser.add_argument("--purpose", required=True, choices=PURPOSES)
        parser.add_argument("--topic", default=None)
        parser.add_argument("--category", default=None)
        parser.add_argument("--product", default=None)
        parser.add_argument("--as-of", default=None, help="ISO 8601 instant; default now.")
        parser.add_argument("--format", default="csv", choices=("csv", "ndjson"))
        parser.add_argument("--output", default="-", help="A file; '-' for standard output.")

    def handle(self, *args: Any, **opts: Any) -> None:
        at: datetime = clock.now()
        if opts["as_of"]:
            parsed = parse_datetime(opts["as_of"])
            if parsed is None or parsed.tzinfo is None:
                raise CommandError("--as-of: an ISO 8601 instant with its offset.")
            at = parsed
        message = rules.Message(
            channel=opts["channel"],
            purpose=opts["purpose"],
            topic=opts["topic"],
            category=opts["category"],
            product=opts["product"],
        )
        try:
            rules.check_message(message)
        except rules.MalformedMessage as exc:
            raise CommandError(str(exc)) from exc
        if opts["output"] == "-":
            self.stdout.ending = ""
            out: Any = self.stdout
        else:
            out = open(opts["output"], "w", newline="")  # noqa: SIM115
        try:
            rows = audience(message, at)
            if opts["format"] == "csv":
                writer = csv.writer(out)
                writer.writerow(EXPORT_COLUMNS)
                for row in rows:
                    writer.writerow((row.public_id, row.address, row.reason))
            else:
                for row in rows:
                    out.write(
                        json.dumps(
                            {"id": row.public_id, "address": row.address, "reason": row.reason}
                        )
                        + "\n"
                    )
        finally:
            if out is not self.stdout:
                out.close()
