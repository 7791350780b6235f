"""The append benchmark: does an event cost the same whatever the contact's history?

PostgreSQL required. On its own database (default ``assent_append_bench``, created if missing,
migrated, its contacts emptied), one contact receives ``--events`` events (default 2,000) through
``services`` (row lock, chain, projections, webhook deliveries: what a request or a worker does),
in a repeating mix: opens and clicks, a delivery bounce, opt-ins and opt-outs on two topics and
two channels, a pause, a purchase. The time of each append is kept; the figure is the mean time of
the first 20 appends of a new contact (around the 10th event) and of the last 20 of the long
history, interleaved, and their ratio (target <= 1.25).

For comparison, the whole-history recomputation that appends used to run (and that
``rebuild_projections`` still runs) is timed on the final history.

Prints a table and writes ``<out>/append.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from harness import ROOT, django_setup, ensure_database, log, migrate

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/assent_append_bench"
TARGET_RATIO = 1.25
WINDOW = 20


def setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    if django_setup(url) != "postgresql":
        sys.exit("The append benchmark needs PostgreSQL: set DATABASE_URL.")
    from ledger_bench import reset

    ensure_database()
    migrate()
    reset(own_database=True, allowed=True)


def mix(services, contact, proof, i: int) -> None:
    """The i-th event of the repeating mix."""
    step = i % 20
    if step in (0, 10):
        services.consent_grant(
            contact=contact, topic="promotions" if step else "newsletter", channel="email",
            proof=proof,
        )  # fmt: skip
    elif step == 5:
        services.consent_withdraw(contact=contact, topic="promotions", channel="sms", proof=proof)
    elif step == 15:
        services.consent_grant(contact=contact, topic="promotions", channel="sms", proof=proof)
    elif step == 7:
        services.bounce_record(contact=contact, hard=False, proof=proof)
    elif step == 13:
        services.purchase_record(
            contact=contact, category="books", product=f"p{i % 7}", proof=proof
        )
    else:
        kind = "click" if step % 3 == 0 else "open"
        services.interaction_record(contact=contact, kind=kind, proof=proof)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    setup(os.environ.get("APPEND_BENCH_DATABASE_URL", DEFAULT_URL))

    from django.db import connection

    from consents import projections, services
    from consents.models import Topic

    if not Topic.objects.filter(slug="promotions").exists():
        for slug in ("promotions", "newsletter"):
            services.topic_create(
                slug=slug, purpose="promotion", channels=["email", "sms"], name_fr=slug,
                name_en=slug, frequencies=[],
            )  # fmt: skip
    long = services.contact_create(email=f"bench-long-{time.time_ns()}@example.com")
    short = services.contact_create(email=f"bench-short-{time.time_ns()}@example.com")
    proof = services.Proof(method="web_form", actor="person", collection_point="/subscribe/")
    log(f"appending {args.events - WINDOW} events to one contact")
    for i in range(args.events - WINDOW):
        mix(services, long, proof, i)
    # Then, interleaved (so that the machine's load weighs on both alike): the 1st to 20th events
    # of a new contact, and the last 20 of the long history, each timed.
    early: list[float] = []
    late: list[float] = []
    log(f"timing events 1-{WINDOW} of a new contact against the last {WINDOW} of the long one")
    for i in range(WINDOW):
        for contact, times, n in ((short, early, i), (long, late, args.events - WINDOW + i)):
            started = time.perf_counter()
            mix(services, contact, proof, n)
            times.append(time.perf_counter() - started)
    contact = long
    full = []
    for _ in range(5):
        started = time.perf_counter()
        projections.projection_refresh(contact)
        full.append(time.perf_counter() - started)
    result = {
        "events": args.events,
        "early_ms": statistics.mean(early) * 1000,
        "late_ms": statistics.mean(late) * 1000,
        "ratio": statistics.mean(late) / statistics.mean(early),
        "target_ratio": TARGET_RATIO,
        "full_recompute_ms": statistics.median(full) * 1000,
        "postgresql": connection.pg_version,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "append.json").write_text(json.dumps(result, indent=2))
    print()
    print("| append | ms per event |")
    print("|---|---:|")
    print(f"| events 1-{WINDOW} of a contact (around the 10th) | {result['early_ms']:.2f} |")
    print(f"| the last {WINDOW} of {args.events} | {result['late_ms']:.2f} |")
    verdict = "OK" if result["ratio"] <= TARGET_RATIO else "MISSED"
    print(f"| ratio (target <= {TARGET_RATIO}) | {result['ratio']:.2f} {verdict} |")
    print(
        f"| whole-history recomputation at {args.events} events"
        f" | {result['full_recompute_ms']:.1f} |"
    )


if __name__ == "__main__":
    main()
