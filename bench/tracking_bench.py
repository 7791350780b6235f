"""The tracking benchmark: email-service webhooks accepted per second, and the inbox drained.

Needs PostgreSQL and ``wrk``. On a fresh database (default ``assent_tracking_bench``) it loads
``--contacts`` people (one opt-in each, through ``consents.bulk``), then:

1. **Accepted.** gunicorn (``config.wsgi``, 2 sync workers, production settings, the webhook's
   basic auth on) takes Postmark click events on ``/webhooks/anymail/postmark/tracking/`` from
   ``wrk`` (2 threads, 4 connections, ``--seconds``), each a distinct message to a random person:
   anymail's authentication and parsing, the receiver's checks, one inbox row, the 200. Target
   1,000 requests/s.
2. **Drained.** The inbox (topped up to ``--drain-events`` rows) is moved into the ledger by
   ``preferences.tracking.drain`` in batches of ``--batch-size`` (1,000), in one process: chained
   events, projections updated from their state, webhook deliveries. Target 5,000 events/s.

Prints a table and writes ``<out>/tracking.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path

import harness
from harness import ROOT, log

BIN = Path(sys.executable).parent
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432"
DEFAULT_DB = "assent_tracking_bench"
SECRET = "bench-esp:" + "x" * 24
TARGETS = {"accepted_rps": 1000, "drained_per_s": 5000}


def server_env(args: argparse.Namespace) -> dict[str, str]:
    return harness.server_env(
        drop=("ANYMAIL_", "CELERY_", "EMAIL_", "DJANGO_", "REDIS_", "TRACKING_"),
        database_url=f"{args.server_url}/{args.database}",
        secret_key=secrets.token_urlsafe(40),
        var_dir=args.out / "tracking-var",
        ANYMAIL_WEBHOOK_SECRET=SECRET,
        EMAIL_TRACKING_WEBHOOKS="True",
        TRACKING_OPENS_PER_PERSON="False",
        # Each gunicorn worker keeps its database connection (a new one per request costs more
        # than the request's own insert).
        CONN_MAX_AGE=str(args.conn_max_age),
    )


# --- Children (Django set up) -------------------------------------------------------------------


def _django() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def child_seed(contacts: int) -> None:
    _django()
    from datetime import UTC, datetime

    from consents import bulk, services

    services.topic_create(
        slug="promotions", purpose="promotion", channels=["email"], name_fr="Promotions",
        name_en="Promotions",
    )  # fmt: skip
    at = datetime(2026, 1, 5, tzinfo=UTC)
    items = [
        (
            {"email": f"c{i}@bench.example", "collected_at": at, "informed_at_collection": True},
            [
                {
                    "type": "opt_in", "occurred_at": at, "topic": "promotions", "channel": "email",
                    "method": "web_form", "actor": "person", "data": {"doi": "none"},
                }
            ],
        )
        for i in range(contacts)
    ]  # fmt: skip
    bulk.load(items)


def child_drain(contacts: int, events: int, batch_size: int) -> None:
    _django()
    import random
    from datetime import UTC, datetime, timedelta

    from preferences import tracking
    from preferences.models import TrackingInbox

    waiting = TrackingInbox.objects.count()
    rng = random.Random(7)
    base = datetime(2026, 11, 29, 10, tzinfo=UTC)
    for n in range(max(0, events - waiting)):
        tracking.received(
            esp="Postmark", event_type="clicked", fact="interaction",
            recipient=f"c{rng.randrange(contacts)}@bench.example", reference=f"bench:{n}",
            occurred_at=base + timedelta(milliseconds=n), hard=False, message="", raw=None,
        )  # fmt: skip
    total = TrackingInbox.objects.count()
    started = time.perf_counter()
    moved = tracking.drain_all(batch_size)
    elapsed = time.perf_counter() - started
    print(json.dumps({"rows": total, "moved": moved, "seconds": elapsed}))


# --- The load -------------------------------------------------------------------------------------

LUA = r"""
local contacts = %(contacts)d
local auth = "Basic %(auth)s"
request = function()
  local n = math.random(0, contacts - 1)
  local id = string.format("%%08x-%%04x-%%04x-%%012x", math.random(0, 0x7fffffff),
    math.random(0, 0xffff), math.random(0, 0xffff), math.random(0, 0x7fffffff))
  local body = string.format('{"RecordType":"Click","MessageStream":"broadcast",' ..
    '"MessageID":"%%s","Recipient":"c%%d@bench.example","ReceivedAt":"2026-11-29T10:00:00Z",' ..
    '"OriginalLink":"https://shop.example/sale","ClickLocation":"HTML","Platform":"Desktop",' ..
    '"UserAgent":"Mozilla/5.0","Tag":"november-sale","Metadata":{}}', id, n)
  return wrk.format("POST", "/webhooks/anymail/postmark/tracking/",
    {["Content-Type"] = "application/json", ["Authorization"] = auth}, body)
end
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-url", default=DEFAULT_SERVER)
    parser.add_argument("--database", default=DEFAULT_DB)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--drain-events", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--conn-max-age", type=int, default=60)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--child", choices=["seed", "drain"])
    args = parser.parse_args()
    if args.child == "seed":
        return child_seed(args.contacts)
    if args.child == "drain":
        return child_drain(args.contacts, args.drain_events, args.batch_size)

    import base64

    args.out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    log(f"fresh database {args.database}, {args.contacts} people")
    harness.recreate_database(args.server_url, args.database)
    harness.run(server_env(args), py, "manage.py", "migrate", "--noinput", "-v0")
    harness.run(server_env(args), py, __file__, "--child", "seed", "--contacts", str(args.contacts))
    port = harness.spare_port()
    script = args.out / "tracking.lua"
    script.write_text(
        LUA % {"contacts": args.contacts, "auth": base64.b64encode(SECRET.encode()).decode()}
    )
    server = harness.Server(
        "gunicorn",
        [str(BIN / "gunicorn"), "config.wsgi", "--workers", "2",
         "--error-logfile", str(args.out / "tracking-gunicorn.log")],
        ROOT, server_env(args), port,
    )  # fmt: skip
    try:
        server.wait("/healthz", tries=200)
        log(f"wrk: {args.seconds} s of Postmark click events, 2 threads, 4 connections")
        accepted = harness.wrk(
            port, "/", seconds=args.seconds, script=script,
            figures=("rps", "requests", "non_2xx_3xx", "p50"),
        )  # fmt: skip
    finally:
        server.stop()
    log(f"draining the inbox (topped up to {args.drain_events} rows)")
    drained = json.loads(
        harness.run(server_env(args), py, __file__, "--child", "drain", "--contacts",
                    str(args.contacts), "--drain-events", str(args.drain_events), "--batch-size",
                    str(args.batch_size))
        .strip().splitlines()[-1]
    )  # fmt: skip
    result = {
        "accepted": accepted,
        "drained": drained,
        "drained_per_s": drained["moved"] / drained["seconds"],
        "targets": TARGETS,
        "cpus": os.cpu_count(),
    }
    (args.out / "tracking.json").write_text(json.dumps(result, indent=2))
    print()
    print("| path | figure | target |")
    print("|---|---:|---:|")
    print(
        f"| webhook accepted (2 gunicorn workers) | {accepted['rps']:.0f} req/s "
        f"(non-2xx: {accepted['non_2xx_3xx']}, p50 {accepted['p50']}) | 1,000 req/s |"
    )
    print(
        f"| inbox drained into the ledger | {result['drained_per_s']:.0f} events/s "
        f"({drained['moved']} in {drained['seconds']:.1f} s) | 5,000 events/s |"
    )


if __name__ == "__main__":
    main()
