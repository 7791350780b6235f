"""The integration API's benchmark (``make bench-api``; PostgreSQL required). See bench/README.md.

Reads the dataset ``make bench-ledger`` builds (``bench/ledger_bench.py``; by default 1,000,000
contacts in ``assent_bench``) and measures, on this machine:

1. ``POST /api/v1/decisions`` with 1,000 questions about 1,000 different contacts, through the
   whole Django stack (middleware, key, throttle, serializers), best of ``--runs``; and the number
   of SQL queries, which must not grow with the batch.
2. The audience of (topic ``promotions``, email, purpose promotion) as of the dataset's instant:
   ``manage.py audience --format csv --output FILE`` against ``GET /api/v1/audiences`` with
   ``Accept: text/csv`` streamed into a file, each in a fresh Python process, interleaved, best of
   ``--runs`` each, with the peak RSS of each process (``VmHWM``).

Prints a table with the targets and writes it as JSON to ``<out>/api.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import ROOT, django_setup

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/assent_bench"
AS_OF = "2026-10-01T09:00:00+00:00"
TARGETS = {"decisions_s": 1.0, "audience_ratio": 1.5, "peak_rss_mb": 150}
AUDIENCE = {"channel": "email", "purpose": "promotion", "topic": "promotions"}


def setup() -> None:
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
    django_setup(DEFAULT_URL)


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_key(scopes: list[str]) -> str:
    from api import keys

    _, raw = keys.key_create(
        name=f"bench-{random.randrange(10**9)}", scopes=scopes, rate_per_minute=10**6
    )
    return raw


def decisions(runs: int) -> dict[str, Any]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from consents.models import Contact

    total = Contact.objects.count()
    if total < 1000:
        sys.exit(
            f"the database holds {total} contacts: build the dataset first (make bench-ledger)"
        )
    rng = random.Random(13)
    step = max(1, total // 1000)
    ids = list(
        Contact.objects.order_by("id").values_list("public_id", flat=True)[: step * 1000 : step]
    )
    messages = [
        {"channel": "email", "purpose": "promotion", "topic": "promotions", "category": "books"},
        {"channel": "sms", "purpose": "promotion", "topic": "new-products"},
        {"channel": "email", "purpose": "newsletter", "topic": "newsletter"},
        {"channel": "phone", "purpose": "promotion", "topic": "promotions", "category": "fibre"},
    ]
    body = json.dumps(
        {
            "questions": [
                {"contact": {"id": pid}, "message": rng.choice(messages), "as_of": AS_OF}
                for pid in ids
            ]
        }
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {bench_key(['decisions:read'])}")
    times, cpu, queries, allowed, sql_s = [], [], 0, 0, 0.0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as ctx:
            start, start_cpu = time.perf_counter(), time.process_time()
            r = client.post("/api/v1/decisions", body, content_type="application/json")
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        assert r.status_code == 200, r.content[:300]
        queries = len(ctx.captured_queries)
        sql_s = sum(float(q["time"]) for q in ctx.captured_queries)
        allowed = sum(d["allowed"] for d in r.json()["decisions"])
    return {
        "questions": len(ids),
        "best_s": min(times),
        "worst_s": max(times),
        # The request is served in this process: its CPU time is the server's Python cost,
        # whatever else the machine runs (PostgreSQL's share is apart).
        "python_cpu_s": min(cpu),
        "sql_s_last_run": sql_s,
        "queries": queries,
        "allowed": allowed,
    }


def child(kind: str, out: str, key: str) -> None:
    """Runs in a fresh process: one export into ``out``; prints its time and peak RSS."""
    setup()
    start = time.perf_counter()
    if kind == "command":
        from django.core.management import call_command

        call_command("audience", format="csv", output=out, as_of=AS_OF, **AUDIENCE)
    else:
        from django.test import Client

        client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
        r = client.get("/api/v1/audiences", {**AUDIENCE, "as_of": AS_OF}, HTTP_ACCEPT="text/csv")
        assert r.status_code == 200, r
        with open(out, "wb") as f:
            for chunk in r.streaming_content:
                f.write(chunk)
    elapsed = time.perf_counter() - start
    print(json.dumps({"seconds": elapsed, "peak_rss_mb": peak_rss_mb()}))


def run_child(kind: str, out: Path, key: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--child-out", str(out), "--child-key", key],
        check=True,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"))
    parser.add_argument("--skip-audience", action="store_true")
    parser.add_argument("--child", choices=["command", "api"])
    parser.add_argument("--child-out")
    parser.add_argument("--child-key", default="")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.child_out, args.child_key)
        return
    setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("PostgreSQL is required: set DATABASE_URL")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from consents.models import Contact, Event

    results: dict[str, Any] = {
        "contacts": Contact.objects.count(),
        "events": Event.objects.count(),
        "load_average_before": os.getloadavg(),
        "decisions": decisions(args.runs),
    }
    if not args.skip_audience:
        key = bench_key(["audience:read"])
        command, api = [], []
        for _ in range(args.runs):
            command.append(run_child("command", out / "audience-command.csv", key))
            api.append(run_child("api", out / "audience-api.csv", key))
        same = (out / "audience-command.csv").read_bytes() == (
            out / "audience-api.csv"
        ).read_bytes()
        best_c = min(command, key=lambda r: r["seconds"])
        best_a = min(api, key=lambda r: r["seconds"])
        with open(out / "audience-api.csv", "rb") as f:
            rows = sum(1 for _ in f) - 1
        results["audience"] = {
            "rows": rows,
            "identical_files": same,
            "command_s": best_c["seconds"],
            "api_s": best_a["seconds"],
            "ratio": best_a["seconds"] / best_c["seconds"],
            "command_peak_rss_mb": max(r["peak_rss_mb"] for r in command),
            "api_peak_rss_mb": max(r["peak_rss_mb"] for r in api),
        }
    results["load_average_after"] = os.getloadavg()
    results["targets"] = TARGETS
    (out / "api.json").write_text(json.dumps(results, indent=2))
    d = results["decisions"]
    print(f"dataset: {results['contacts']:,} contacts, {results['events']:,} events")
    print(f"{'measure':<44} {'result':>18} {'target':>10}")
    print(f"{'1,000 decisions, one request (best)':<44} {d['best_s']:>16.3f} s {'< 1 s':>10}")
    print(f"{'  Python CPU of that request':<44} {d['python_cpu_s']:>16.3f} s")
    print(f"{'  SQL queries for the batch':<44} {d['queries']:>18} {'':>10}")
    print(f"{'  time in those queries (last run)':<44} {d['sql_s_last_run']:>16.3f} s")
    if "audience" in results:
        a = results["audience"]
        print(f"{'audience rows':<44} {a['rows']:>18,}")
        print(f"{'manage.py audience (best)':<44} {a['command_s']:>16.2f} s")
        print(f"{'GET /api/v1/audiences (best)':<44} {a['api_s']:>16.2f} s")
        print(f"{'ratio':<44} {a['ratio']:>17.2f}x {'<= 1.5x':>10}")
        print(f"{'peak RSS, API process':<44} {a['api_peak_rss_mb']:>15.1f} MB {'<= 150 MB':>10}")
        print(f"{'peak RSS, command process':<44} {a['command_peak_rss_mb']:>15.1f} MB")
        print(f"{'same bytes from both':<44} {a['identical_files']!s:>18}")
    print(f"written to {out / 'api.json'}")


if __name__ == "__main__":
    main()
