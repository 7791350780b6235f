"""The tracking benchmark: email-service webhooks accepted per second, and the inbox drained.

Needs PostgreSQL and ``wrk``. On a fresh database (default ``assent_tracking_bench``) it loads
``--contacts`` people (one opt-in each, through ``consents.bulk``), then:

1. **Accepted.** gunicorn (``config.wsgi``, 2 workers, production settings, the webhook's basic
   auth on) takes Postmark click events on ``/webhooks/anymail/postmark/tracking/`` from ``wrk``
   (2 threads, ``--connections`` (4), ``--seconds``), each a distinct message to a random person:
   anymail's authentication and parsing, the receiver's checks, one inbox row, the 200. Target
   1,000 requests/s. Each worker class of ``--workers`` (default: ``sync``, then ``gthread`` with
   8 threads, the documented deployment) runs back to back on the same database; each is also
   measured on ``/healthz`` (the same middleware, one ``SELECT 1``, no commit), the floor of that
   server on a machine whose load changes, and the CPU time per request of the gunicorn workers
   and of their PostgreSQL backends is read from ``/proc``. The last class gives the figure.
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
from typing import Any

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
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = [cursor.fetchone()[0]]
    started, cpu, db = time.perf_counter(), time.process_time(), _cpu_seconds(backend)
    moved = tracking.drain_all(batch_size)
    elapsed = time.perf_counter() - started
    cpu, db = time.process_time() - cpu, _cpu_seconds(backend) - db
    print(
        json.dumps(
            {
                "rows": total, "moved": moved, "seconds": elapsed,
                "python_cpu_us": 1e6 * cpu / max(moved, 1),
                "db_cpu_us": 1e6 * db / max(moved, 1), "load": _load(),
            }
        )
    )  # fmt: skip


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


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (Linux ``/proc``)."""
    ticks, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _backends(args: argparse.Namespace) -> list[int]:
    """The PostgreSQL backends connected to the bench database (the web workers' connections)."""
    import psycopg

    with psycopg.connect(f"{args.server_url}/{args.database}", autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
    return [pid for (pid,) in rows]


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure(args: argparse.Namespace, port: int, script: Path, worker: str) -> dict[str, Any]:
    """One gunicorn with 2 workers (``worker``: ``sync`` or ``gthread:<threads>``): the webhook
    under ``wrk``, then ``/healthz`` (the same middleware, one ``SELECT 1``, no commit) as the
    floor of the same server a few seconds later; the CPU time per request of the gunicorn
    workers and of their PostgreSQL backends."""
    worker_class, _, threads = worker.partition(":")
    command = [str(BIN / "gunicorn"), "config.wsgi", "--workers", "2",
               "--worker-class", worker_class,
               "--error-logfile", str(args.out / "tracking-gunicorn.log")]  # fmt: skip
    if threads:
        command += ["--threads", threads]
    server = harness.Server("gunicorn", command, ROOT, server_env(args), port)
    result: dict[str, Any] = {"worker": worker}
    figures = ("rps", "requests", "non_2xx_3xx", "p50")
    try:
        server.wait("/healthz", tries=200)
        workers = _children(server.process.pid)
        for name, target, path in (("accepted", script, "/"), ("floor", None, "/healthz")):
            # Every connection opened before the measure.
            harness.wrk(port, path, seconds=1, connections=args.connections, script=target)
            backends = _backends(args)
            before = (_cpu_seconds(workers), _cpu_seconds(backends))
            log(f"{worker}: wrk {args.seconds} s on {'the webhook' if target else path}")
            got = harness.wrk(
                port, path, seconds=args.seconds, connections=args.connections, script=target,
                figures=figures,
            )  # fmt: skip
            web, db = _cpu_seconds(workers) - before[0], _cpu_seconds(backends) - before[1]
            got["web_cpu_ms"] = 1000 * web / max(got["requests"], 1)
            got["db_cpu_ms"] = 1000 * db / max(got["requests"], 1)
            got["load"] = _load()
            result[name] = got
    finally:
        server.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-url", default=DEFAULT_SERVER)
    parser.add_argument("--database", default=DEFAULT_DB)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--drain-events", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--conn-max-age", type=int, default=60)
    parser.add_argument(
        "--workers", nargs="+", default=["sync", "gthread:8"],
        help="gunicorn worker classes measured back to back, each with 2 workers "
        "(sync, gthread:<threads>); the last one is the figure",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument(
        "--connections", type=int, default=4, help="wrk's connections (requests in flight)"
    )
    parser.add_argument("--no-drain", action="store_true", help="the webhook only")
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
    servers = [measure(args, port, script, worker) for worker in args.workers]
    accepted = servers[-1]["accepted"]
    if args.no_drain:
        (args.out / "tracking-accepted.json").write_text(json.dumps(servers, indent=2))
        return
    log(f"draining the inbox (topped up to {args.drain_events} rows)")
    drained = json.loads(
        harness.run(server_env(args), py, __file__, "--child", "drain", "--contacts",
                    str(args.contacts), "--drain-events", str(args.drain_events), "--batch-size",
                    str(args.batch_size))
        .strip().splitlines()[-1]
    )  # fmt: skip
    result = {
        "accepted": accepted,
        "servers": servers,
        "drained": drained,
        "drained_per_s": drained["moved"] / drained["seconds"],
        "targets": TARGETS,
        "cpus": os.cpu_count(),
    }
    (args.out / "tracking.json").write_text(json.dumps(result, indent=2))
    print()
    print("| path | figure | target |")
    print("|---|---:|---:|")
    for server in servers:
        for name in ("accepted", "floor"):
            f = server[name]
            what = "webhook accepted" if name == "accepted" else "floor: /healthz"
            print(
                f"| {what}, 2 {server['worker']} workers | {f['rps']:.0f} req/s "
                f"(non-2xx: {f['non_2xx_3xx']}, p50 {f['p50']}; CPU per request: web "
                f"{f['web_cpu_ms']:.2f} ms, PostgreSQL {f['db_cpu_ms']:.2f} ms; load {f['load']}) "
                f"| {'1,000 req/s' if name == 'accepted' else ''} |"
            )
    print(
        f"| inbox drained into the ledger | {result['drained_per_s']:.0f} events/s "
        f"({drained['moved']} in {drained['seconds']:.1f} s; CPU per event: Python "
        f"{drained['python_cpu_us']:.0f} us, PostgreSQL {drained['db_cpu_us']:.0f} us; "
        f"load {drained['load']}) | 5,000 events/s |"
    )


if __name__ == "__main__":
    main()
