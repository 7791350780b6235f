"""The ledger benchmark (``make bench``; PostgreSQL required). See bench/README.md.

1. Generates a seeded population (default 1,000,000 contacts, about 5 events each) and loads it
   through ``consents.bulk`` (chains and projections included), timed as a whole.
2. VACUUM ANALYZE.
3. Exports the audience of (topic ``promotions``, email, purpose promotion) to a CSV file, against
   the floor, ``COPY (SELECT email FROM consents_contact) TO STDOUT`` to a file; best of 3 each,
   each run in a fresh Python process so that its peak RSS is the export's own.
4. Times ``manage.py verify_ledger`` over the whole ledger.

Prints a table with the targets and writes it as JSON to ``<out>/results.json``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import ROOT, django_setup, ensure_database, log, migrate, truncate

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/assent_bench"
# The population is generated as of this instant (it must not be in the future: the ledger
# refuses future facts) and the audience is computed as of it, so runs are comparable.
NOW = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
TARGETS = {"events_per_s": 10_000, "audience_ratio": 3.0, "peak_rss_mb": 150, "verify_s": 60}

TOPICS = [
    # slug, purpose, channels
    ("promotions", "promotion", ["email", "sms", "push", "phone", "postal"]),
    ("newsletter", "newsletter", ["email", "postal"]),
    ("new-products", "promotion", ["email", "sms", "push"]),
]
CATALOG = {
    "books": "culture",
    "dvd": "culture",
    "music": "culture",
    "video-games": "culture",
    "sofa": "home",
    "lamp": "home",
    "bedding": "home",
    "kitchen": "home",
    "laptop": "tech",
    "smartphone": "tech",
    "tv": "tech",
    "bike": "sport",
    "running-shoes": "sport",
    "mobile-plan": "telecom",
    "fibre": "telecom",
}
CATEGORIES = [c for c in CATALOG if CATALOG[c] != "telecom"]
GENERIC = ["info", "contact", "sales", "commercial", "accueil", "office", "marketing"]
PROFESSIONS = ["procurement", "it", "marketing", "hr", "facilities"]
DOMAINS = [f"mail{n}.example" for n in range(40)] + ["gmail.example", "orange.example"]
FIRST_NAMES = ["Marie", "Jean", "Léa", "Hugo", "Chloé", "Lucas", "Inès", "Louis", "Zoé", "Adam"]
ASCII_NAMES = ["marie", "jean", "lea", "hugo", "chloe", "lucas", "ines", "louis", "zoe", "adam"]
SITE = "https://shop.example"
# Events of the population other than interactions, on average (measured on a seeded run):
# interactions top the history up to --events-per-contact.
BASE_EVENTS_PER_CONTACT = 1.33


# --- Setup --------------------------------------------------------------------------------------


def setup_django() -> None:
    vendor = django_setup(DEFAULT_URL)
    if vendor != "postgresql":
        sys.exit(
            "The ledger benchmark needs PostgreSQL (it loads with COPY and measures the "
            f"PostgreSQL audience query); DATABASE_URL points to {vendor}. Run e.g.\n"
            f"  DATABASE_URL={DEFAULT_URL} make bench"
        )


def reset(own_database: bool, allowed: bool) -> None:

    from consents.models import Contact

    if not Contact.objects.exists():
        return
    if not (own_database or allowed):
        sys.exit(
            "The database already holds contacts. Pass --reset to empty it (TRUNCATE ... CASCADE "
            "of the contacts and all that references them) or --skip-generate to reuse them."
        )
    log("emptying the contacts, the ledger and the projections (TRUNCATE ... CASCADE)")
    truncate("consents_contact, consents_ledgeranchor")


def ensure_reference_data() -> None:
    from consents import services
    from consents.models import Category, Topic

    for slug, purpose, channels in TOPICS:
        if not Topic.objects.filter(slug=slug).exists():
            services.topic_create(
                slug=slug,
                purpose=purpose,
                channels=channels,
                name_fr=slug,
                name_en=slug,
                frequencies=["weekly", "monthly"],
            )
    for slug, family in CATALOG.items():
        if not Category.objects.filter(slug=slug, family=family).exists():
            services.category_set(slug=slug, family=family)


# --- The population -----------------------------------------------------------------------------


def population(
    start: int, stop: int, events_per_contact: float, seed: int
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Contacts ``start <= i < stop`` of a seeded population as of ``NOW``: (contact fields,
    events in time order). Contact ``i`` is the same whatever the slice (its own seed)."""
    from consents import bulk

    rng = random.Random()
    r = rng.random
    interactions_mean = max(0.0, events_per_contact - BASE_EVENTS_PER_CONTACT)
    span = 4 * 365 * 86400

    for i in range(start, stop):
        rng.seed(seed * 10_000_000_000 + i)
        professional = r() < 0.06
        collected_at = NOW - timedelta(seconds=rng.randrange(86400, span))
        window = (NOW - collected_at).total_seconds()

        def at(after: datetime | None = None, _c: datetime = collected_at) -> datetime:
            lo = after or _c
            return lo + timedelta(seconds=r() * (NOW - lo).total_seconds())

        if professional and r() < 0.3:
            email: str | None = f"{rng.choice(GENERIC)}@company-{i}.example"
        elif r() < 0.96:
            email = f"{rng.choice(ASCII_NAMES)}.{i}@{rng.choice(DOMAINS)}"
        else:
            email = None
        has_phone = r() < 0.6
        fields: dict[str, Any] = {
            "public_id": f"b{seed}-{i:08d}",
            "kind": "professional" if professional else "consumer",
            "email": email,
            "phone": f"+336{i:08d}" if has_phone else "",
            "first_name": rng.choice(FIRST_NAMES),
            "postal_address": f"{i % 200 + 1} rue de la Paix, 75002 Paris" if r() < 0.4 else "",
            "push_token": f"push-{seed}-{i}" if r() < 0.1 else "",
            "locale": "fr" if r() < 0.85 else "en",
            "collected_at": collected_at,
            "informed_at_collection": r() < 0.85,
            "profession": rng.choice(PROFESSIONS) if professional else "",
        }
        events: list[dict[str, Any]] = []
        add = events.append
        web = {"actor": "person", "collection_point": f"{SITE}/subscribe/"}

        def consent(
            topic: str, channel: str, _web: dict[str, Any] = web, _add: Any = add
        ) -> datetime:
            when = at()
            roll = r()
            extra: dict[str, Any] = dict(_web)
            if roll < 0.03:
                method, extra = (
                    "import",
                    {"proof": "crm-2023:newsletter-form-v2", "actor": "staff:1"},
                )
            elif roll < 0.04:
                method, extra = "import", {"actor": "staff:1"}  # no proof: invalid consent
            elif roll < 0.2:
                method = "store_tablet"
                extra = {"actor": "person", "collection_point": f"store:{rng.randrange(30)}"}
            elif roll < 0.35:
                method = "preference_center"
            else:
                method = "web_form"
            if method == "web_form" and r() < 0.3:
                extra.update(
                    ip_address=f"203.0.113.{rng.randrange(1, 255)}", user_agent="Mozilla/5.0"
                )
            pending = channel == "email" and method == "web_form" and r() < 0.4
            _add(
                bulk.opt_in(
                    topic,
                    channel,
                    when,
                    method=method,
                    doi="pending" if pending else "none",
                    prechecked=r() < 0.01,
                    frequency=rng.choice(("", "weekly", "monthly")),
                    **extra,
                )
            )
            if pending and r() < 0.88:
                # A few confirm after the link's lifetime: not consent.
                late = r() < 0.05
                delay = (
                    rng.randrange(8 * 86400, 10 * 86400) if late else rng.randrange(60, 3 * 86400)
                )
                confirmed = when + timedelta(seconds=delay)
                if confirmed <= NOW:
                    _add(bulk.doi_confirmed(topic, channel, confirmed, actor="person"))
                    when = confirmed
            return when

        promo = r() < 0.25
        if promo and email:
            since = consent("promotions", "email")
            if r() < 0.12:
                how = rng.choice(("unsubscribe_link", "one_click_unsubscribe"))
                add(bulk.opt_out("promotions", "email", at(since), method=how, actor="person"))
        if email and r() < 0.15:
            consent("newsletter", "email")
        if has_phone and r() < 0.08:
            consent("new-products", "sms")
        if has_phone and r() < 0.05:
            consent("promotions", "sms")
        if r() < 0.02:
            add(
                bulk.opt_out(
                    "*", "*", at(), method=rng.choice(("web_form", "admin")), actor="person"
                )
            )
        if r() < 0.01:
            add(bulk.opt_out("promotions", "*", at(), method="preference_center", actor="person"))
        if email and r() < 0.003:
            add(bulk.complaint(at(), actor="system"))
        if r() < 0.30:
            count = 1 + min(int(rng.expovariate(0.7)), 9)
            for _ in range(count):
                category = rng.choice(CATEGORIES)
                when = at()
                warranty = when + timedelta(days=730) if r() < 0.2 else None
                add(
                    bulk.purchase(
                        category,
                        f"{category}-{rng.randrange(40)}",
                        when,
                        warranty_until=warranty,
                        actor="system",
                        collection_point=f"{SITE}/orders/",
                    )
                )
        if r() < 0.03:
            category = rng.choice(("mobile-plan", "fibre"))
            contract = f"C-{i}"
            started = at()
            add(bulk.contract_start(contract, category, started, actor="system"))
            if r() < 0.3:
                add(bulk.contract_end(contract, at(started), actor="system"))
        if r() < 0.02:
            when = at()
            until = when + timedelta(days=rng.randrange(30, 240))
            add(bulk.pause(rng.choice(("email", "email", "*")), until, when, actor="person"))
        if email and r() < 0.015:
            bounced = at()
            add(bulk.bounce(True, bounced, actor="system"))
            if r() < 0.3:
                add(bulk.address_changed("email", at(bounced), actor="person"))
        elif email and r() < 0.03:
            add(bulk.bounce(False, at(), actor="system"))
        if has_phone and r() < 0.005:
            add(bulk.callback_request(at(), actor="person"))
        if r() < 0.02 and window > 2 * 365 * 86400:
            add(bulk.repermission_sent("email", at(), actor="system"))
        # Opens, clicks and replies top the history up to the requested average.
        count = int(rng.expovariate(1 / interactions_mean) + 0.5) if interactions_mean else 0
        for _ in range(count):
            roll = r()
            kind = (
                "open"
                if roll < 0.55
                else "click"
                if roll < 0.9
                else "reply"
                if roll < 0.95
                else "contact"
            )
            add(bulk.interaction(kind, at(), actor="person"))
        events.sort(key=lambda e: e["occurred_at"])
        yield fields, events


# --- Measurements -------------------------------------------------------------------------------


def _part(
    start: int, stop: int, events_per_contact: float, seed: int
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    return population(start, stop, events_per_contact, seed)


PG_CPU_DIR = Path("/tmp") / f"assent-ledger-bench-{os.getpid()}"


def _backend_cpu() -> float | None:
    """CPU seconds of this process's PostgreSQL backend so far (a local server only)."""
    from django.db import connection

    try:
        pid = connection.connection.info.backend_pid
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, AttributeError, IndexError, ValueError):
        return None


def _record_backend_cpu(stats: Any) -> None:
    """After each batch: note the backend's CPU so far (the parent sums the last notes)."""
    cpu = _backend_cpu()
    if cpu is not None:
        (PG_CPU_DIR / str(os.getpid())).write_text(str(cpu))


def _worker_progress(stats: Any) -> None:
    _record_backend_cpu(stats)
    if stats.batches % 10 == 0:
        log(f"  worker {os.getpid()}: {stats.contacts:>9,} contacts {stats.events:>10,} events")


def generate(args: argparse.Namespace) -> dict[str, Any]:
    from consents import bulk

    # The synthetic data's own cost, measured on a sample (it is part of the wall clock below).
    sample = min(args.contacts, 20_000)
    t = time.process_time()
    for _ in population(0, sample, args.events_per_contact, args.seed):
        pass
    synthetic_per_contact = (time.process_time() - t) / max(sample, 1)

    log(
        f"generating {args.contacts:,} contacts (~{args.events_per_contact} events each) "
        f"with {args.workers} worker process(es)"
    )
    PG_CPU_DIR.mkdir(exist_ok=True)
    load_before = os.getloadavg()
    started = time.perf_counter()
    children_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_started = time.process_time()
    if args.workers <= 1:

        def progress(stats: bulk.LoadStats) -> None:
            _record_backend_cpu(stats)
            if stats.batches % args.log_every == 0 or stats.contacts == args.contacts:
                log(
                    f"  {stats.contacts:>9,} contacts {stats.events:>10,} events"
                    f"  {stats.events / (time.perf_counter() - started):>8,.0f} events/s"
                )

        stats = bulk.load(
            population(0, args.contacts, args.events_per_contact, args.seed),
            batch_size=args.batch_size,
            progress=progress,
        )
    else:
        bounds = [args.contacts * k // args.workers for k in range(args.workers + 1)]
        parts = [
            functools.partial(_part, lo, hi, args.events_per_contact, args.seed)
            for lo, hi in itertools.pairwise(bounds)
        ]
        stats = bulk.load_parallel(parts, batch_size=args.batch_size, progress=_worker_progress)
    elapsed = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (time.process_time() - cpu_started) + (
        children.ru_utime + children.ru_stime - children_cpu.ru_utime - children_cpu.ru_stime
    )
    synthetic = synthetic_per_contact * stats.contacts
    notes = list(PG_CPU_DIR.iterdir())
    pg_cpu = sum(float(note.read_text()) for note in notes) if notes else None
    for note in notes:
        note.unlink()
    PG_CPU_DIR.rmdir()
    events = max(stats.events, 1)
    return {
        "contacts": stats.contacts,
        "events": stats.events,
        "events_per_contact": round(stats.events / max(stats.contacts, 1), 2),
        "evidence": stats.evidence,
        "channel_states": stats.channel_states,
        "consent_states": stats.consent_states,
        "catalog_facts": stats.catalog_facts,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "seconds": round(elapsed, 2),
        "events_per_s": round(stats.events / elapsed),
        "python_cpu_seconds": round(cpu, 2),
        "synthetic_data_cpu_seconds": round(synthetic, 2),
        "python_cpu_us_per_event_excluding_synthetic_data": round(
            (cpu - synthetic) / events * 1e6, 1
        ),
        "postgres_cpu_seconds": None if pg_cpu is None else round(pg_cpu, 1),
        # The rate if this work had every CPU of the machine to itself (Python and PostgreSQL
        # CPU seconds spread over the CPUs): a ceiling, as the machine may be shared.
        "events_per_s_if_cpus_were_free": None
        if pg_cpu is None
        else round(stats.events / ((cpu + pg_cpu) / (os.cpu_count() or 1))),
        "postgres_cpu_us_per_event": None if pg_cpu is None else round(pg_cpu / events * 1e6, 1),
        # 1, 5 and 15 minutes: the machine is shared, and the wall clock depends on it.
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def vacuum_analyze() -> float:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def dataset() -> dict[str, Any]:
    from django.db import connection

    tables = [
        "consents_contact",
        "consents_event",
        "consents_evidence",
        "consents_contactfacts",
        "consents_channelstate",
        "consents_consentstate",
        "consents_catalogfact",
    ]
    out: dict[str, Any] = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(
                f"SELECT count(*), pg_total_relation_size('{table}') FROM {table}"  # noqa: S608
            )
            rows, size = cursor.fetchone()
            out[table] = {"rows": rows, "mb": round(size / 2**20)}
    return out


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _peak_rss_mb() -> float:
    """The process's peak RSS since exec (VmHWM). ``getrusage().ru_maxrss`` would not do here:
    Linux carries it over fork and exec, so a child started by a big parent inherits its peak."""
    return (_status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def child_audience(out: Path, in_transaction: bool) -> dict[str, Any]:
    """Runs in a fresh process: iterate ``audience(...)`` into a CSV file."""
    import contextlib

    from django.db import transaction

    from consents.audience import audience
    from consents.rules import Message

    message = Message(channel="email", purpose="promotion", topic="promotions")
    baseline = _status_kb("VmRSS")
    rows = 0
    started, cpu = time.perf_counter(), time.process_time()
    wrap = transaction.atomic() if in_transaction else contextlib.nullcontext()
    with wrap, open(out / "audience.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("public_id", "email", "reason"))
        for row in audience(message, NOW):
            writer.writerow((row.public_id, row.address, row.reason))
            rows += 1
    elapsed = time.perf_counter() - started
    return {
        "seconds": elapsed,
        "cpu_seconds": time.process_time() - cpu,
        "rows": rows,
        "rss_before_mb": baseline / 1024,
        "peak_rss_mb": _peak_rss_mb(),
        "bytes": (out / "audience.csv").stat().st_size,
    }


def child_floor(out: Path) -> dict[str, Any]:
    """Runs in a fresh process: the floor, COPY of every contact's email to a file."""
    from django.db import connection

    connection.ensure_connection()
    started = time.perf_counter()
    with (
        open(out / "floor.csv", "wb") as f,
        connection.connection.cursor() as cursor,
        cursor.copy("COPY (SELECT email FROM consents_contact) TO STDOUT") as copy,
    ):
        for data in copy:
            f.write(data)
    elapsed = time.perf_counter() - started
    return {
        "seconds": elapsed,
        "peak_rss_mb": _peak_rss_mb(),
        "bytes": (out / "floor.csv").stat().st_size,
    }


def run_child(kind: str, out: Path, extra: list[str] | None = None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind, "--out", str(out), *(extra or [])]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{kind} run failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def export(out: Path, runs: int) -> dict[str, Any]:
    """Floor and audience, interleaved, ``runs`` times each; the best of each is kept.

    The audience is exported twice per run: called as is (outside a transaction, Django's
    server-side cursor is declared WITH HOLD, so PostgreSQL materialises the whole result before
    the first row comes back), and inside ``transaction.atomic()`` (a plain cursor that streams).
    The first is the figure compared with the target: it is how ``audience()`` runs today.
    """
    floors: list[dict[str, Any]] = []
    plain: list[dict[str, Any]] = []
    atomic: list[dict[str, Any]] = []
    for n in range(runs):
        floors.append(run_child("floor", out))
        plain.append(run_child("audience", out))
        atomic.append(run_child("audience", out, ["--audience-in-transaction"]))
        log(
            f"  run {n + 1}: floor {floors[-1]['seconds']:.2f} s, audience "
            f"{plain[-1]['seconds']:.2f} s (in a transaction {atomic[-1]['seconds']:.2f} s), "
            f"{plain[-1]['rows']:,} rows, peak RSS {plain[-1]['peak_rss_mb']:.0f} MB"
        )
    floor = min(f["seconds"] for f in floors)
    best = min(plain, key=lambda r: r["seconds"])
    best_atomic = min(atomic, key=lambda r: r["seconds"])
    return {
        "floor_s": round(floor, 3),
        "floor_bytes": floors[0]["bytes"],
        "audience_s": round(best["seconds"], 3),
        "audience_rows": best["rows"],
        "audience_cpu_s": round(best["cpu_seconds"], 3),
        "audience_bytes": best["bytes"],
        "ratio": round(best["seconds"] / floor, 2),
        "audience_in_transaction_s": round(best_atomic["seconds"], 3),
        "ratio_in_transaction": round(best_atomic["seconds"] / floor, 2),
        "peak_rss_mb": round(max(a["peak_rss_mb"] for a in plain + atomic), 1),
        "rss_before_export_mb": round(max(a["rss_before_mb"] for a in plain + atomic), 1),
        "all_floor_s": [round(f["seconds"], 3) for f in floors],
        "all_audience_s": [round(a["seconds"], 3) for a in plain],
        "all_audience_in_transaction_s": [round(a["seconds"], 3) for a in atomic],
    }


def machine() -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]
        settings = {}
        for name in ("shared_buffers", "work_mem", "max_wal_size", "synchronous_commit"):
            cursor.execute(f"SHOW {name}")
            settings[name] = cursor.fetchone()[0]
    return {
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg()[0],
        "postgres": f"{version}, " + ", ".join(f"{k}={v}" for k, v in settings.items()),
    }


def verify_ledger() -> dict[str, Any]:
    load_before = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "verify_ledger"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    output = (done.stdout + done.stderr).strip()
    return {
        "seconds": round(elapsed, 2),
        "python_cpu_seconds": round(cpu, 1),
        "ok": done.returncode == 0,
        "output": output,
        "load_average_before_verify": [round(x, 2) for x in load_before],
        "load_average_after_verify": [round(x, 2) for x in os.getloadavg()],
        "load_average_after": os.getloadavg()[0],
    }


# --- Report -------------------------------------------------------------------------------------


def _loads(values: list[float]) -> str:
    return " ".join(f"{x:.2f}" for x in values)


def report(results: dict[str, Any]) -> str:
    g, e, v = results.get("generation"), results.get("export"), results["verify"]
    runs = len(e["all_floor_s"]) if e else 0

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    lines = [
        f"{'measure':<44}{'value':>16}{'target':>14}  result",
        "-" * 84,
    ]
    if g:
        lines += [
            f"{'bulk generation (chains + projections)':<44}{g['events_per_s']:>10,} ev/s"
            f"{'>= 10,000':>14}  {verdict(g['events_per_s'] >= TARGETS['events_per_s'])}",
            f"{'  events / contacts / seconds':<44}"
            f"{g['events']:,} / {g['contacts']:,} / {g['seconds']:,.1f} s",
            f"{'  Python CPU (all processes) / synthetic data':<46}"
            f"{g['python_cpu_seconds']:,.1f} s / {g['synthetic_data_cpu_seconds']:,.1f} s"
            f"  ({g['workers']} workers)",
            f"{'  PostgreSQL CPU (its backends)':<44}{g['postgres_cpu_seconds'] or 0:>14,.1f} s"
            f"   (ceiling with free CPUs: {g['events_per_s_if_cpus_were_free'] or 0:,} ev/s)",
            f"{'  CPU per event: Python (no synthetic data) / PostgreSQL':<58}"
            f"{g['python_cpu_us_per_event_excluding_synthetic_data']:.1f} / "
            f"{g['postgres_cpu_us_per_event'] or 0:.1f} µs",
            f"{'  load average before / after (1, 5, 15 min)':<46}"
            f"{_loads(g['load_average_before'])} / {_loads(g['load_average_after'])}",
        ]
    if e:
        lines += [
            f"{f'audience export to CSV (best of {runs})':<44}{e['audience_s']:>14.2f} s",
            f"{f'floor: COPY email TO STDOUT (best of {runs})':<44}{e['floor_s']:>14.2f} s",
            f"{'audience / floor':<44}{e['ratio']:>15.2f}x{'<= 3x':>14}"
            f"  {verdict(e['ratio'] <= TARGETS['audience_ratio'])}",
            f"{'  same, inside transaction.atomic()':<44}{e['audience_in_transaction_s']:>14.2f} s"
            f"   ({e['ratio_in_transaction']:.2f}x the floor)",
            f"{'  audience rows / contacts':<44}{e['audience_rows']:,} / "
            f"{results['dataset']['consents_contact']['rows']:,}",
            f"{'peak RSS of the audience process':<44}{e['peak_rss_mb']:>13.0f} MB{'<= 150 MB':>14}"
            f"  {verdict(e['peak_rss_mb'] <= TARGETS['peak_rss_mb'])}",
            f"{'  RSS before the export (Django loaded)':<44}{e['rss_before_export_mb']:>13.0f} MB",
        ]
    lines += [
        f"{'verify_ledger, whole ledger':<44}{v['seconds']:>14.1f} s{'<= 60 s':>14}"
        f"  {verdict(v['ok'] and v['seconds'] <= TARGETS['verify_s'])}",
        f"{'  Python CPU of verify_ledger (all workers)':<44}{v['python_cpu_seconds']:>14.1f} s",
        f"{'  load average before / after (1, 5, 15 min)':<46}"
        f"{_loads(v['load_average_before_verify'])} / {_loads(v['load_average_after_verify'])}",
        f"{'  ':<4}{v['output'][:80]}",
        "-" * 84,
        "dataset: "
        + ", ".join(
            f"{t.removeprefix('consents_')} {d['rows']:,} rows {d['mb']:,} MB"
            for t, d in results["dataset"].items()
        ),
    ]
    if "vacuum_analyze_s" in results:
        lines.append(f"VACUUM ANALYZE: {results['vacuum_analyze_s']:.1f} s")
    m = results["machine"]
    lines.append(
        f"machine: {m['cpus']} CPUs, load average {m['load_average_before']:.2f} before, "
        f"{v['load_average_after']:.2f} after (other processes share these CPUs); {m['postgres']}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events-per-contact", type=float, default=5.0, help="on average")
    parser.add_argument("--seed", type=int, default=20260801)
    parser.add_argument("--batch-size", type=int, default=10_000, help="contacts per transaction")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="loading processes"
    )
    parser.add_argument("--skip-generate", action="store_true", help="reuse the loaded dataset")
    parser.add_argument(
        "--skip-export", action="store_true", help="no audience export (verify_ledger only)"
    )
    parser.add_argument("--reset", action="store_true", help="empty a non-bench database first")
    parser.add_argument(
        "--partitions",
        type=int,
        default=0,
        help="lay the ledger out as N hash partitions by contact (manage.py partition_ledger)",
    )
    parser.add_argument("--runs", type=int, default=3, help="export runs (the best is kept)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--log-every", type=int, default=10, help="batches between progress lines")
    parser.add_argument("--child", choices=("audience", "floor"), help=argparse.SUPPRESS)
    parser.add_argument("--audience-in-transaction", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    own_database = "DATABASE_URL" not in os.environ
    setup_django()
    args.out.mkdir(parents=True, exist_ok=True)

    if args.child == "audience":
        print(json.dumps(child_audience(args.out, args.audience_in_transaction)))
        return
    if args.child == "floor":
        print(json.dumps(child_floor(args.out)))
        return

    from django.db import connection

    ensure_database()
    migrate()
    if args.partitions:
        from django.core.management import call_command

        call_command("partition_ledger", partitions=args.partitions)
    results: dict[str, Any] = {
        "database": connection.settings_dict["NAME"],
        "now": NOW.isoformat(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "targets": TARGETS,
        "machine": machine(),
        "partitions": args.partitions,
    }
    if not args.skip_generate:
        reset(own_database, args.reset)
        ensure_reference_data()
        results["generation"] = generate(args)
        log(f"loaded: {results['generation']}")
        log("VACUUM ANALYZE")
        results["vacuum_analyze_s"] = round(vacuum_analyze(), 2)
    connection.close()
    results["dataset"] = dataset()
    connection.close()
    if not args.skip_export:
        log("audience export vs floor")
        results["export"] = export(args.out, args.runs)
    log("verify_ledger")
    results["verify"] = verify_ledger()
    log(results["verify"]["output"])
    table = report(results)
    results["table"] = table.splitlines()
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print(table)
    print(f"\nwritten to {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
