"""Import benchmark: a 1,000,000-row Mailchimp export through ``manage.py import_contacts``.

Writes a seeded Mailchimp "subscribed members" export (60% double opt-in with IP addresses, 30%
single opt-in with an IP address, 10% added by hand in Mailchimp: no proof), empties the
database, then runs the command end to end in a fresh Python process (hashing the file, reading
it, mapping every row, the bulk loader, the rows remembered for idempotency) and measures its
wall clock and its peak memory (``VmHWM``). Then ``verify_ledger`` over the whole ledger.

    make bench-import                                      # 1,000,000 rows
    .venv/bin/python bench/import_bench.py --rows 50000    # a quick run

PostgreSQL only; without ``DATABASE_URL``, ``postgres://postgres@127.0.0.1:5432/assent_import_bench``
(created if missing, emptied before each run). Results in ``bench/out/import.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import threading
import time
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import ROOT, django_setup, ensure_database, log, migrate, truncate

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/assent_import_bench"
HEADER = [
    "Email Address", "First Name", "Last Name", "Address", "Phone Number", "MEMBER_RATING",
    "OPTIN_TIME", "OPTIN_IP", "CONFIRM_TIME", "CONFIRM_IP", "LATITUDE", "LONGITUDE", "GMTOFF",
    "DSTOFF", "TIMEZONE", "CC", "REGION", "LAST_CHANGED", "LEID", "EUID", "NOTES", "TAGS",
]  # fmt: skip
FIRST_NAMES = ["Claire", "Jules", "Léa", "Hugo", "Inès", "Louis", "Chloé", "Nathan", "Zoé", "Paul"]
LAST_NAMES = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand"]


def ascii_name(name: str) -> str:
    return unicodedata.normalize("NFKD", name.lower()).encode("ascii", "ignore").decode()


def write_export(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    start = datetime(2019, 1, 1, tzinfo=UTC)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(HEADER)
        for i in range(rows):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            optin = start + timedelta(seconds=rng.randrange(0, 7 * 365 * 86400))
            ip = f"203.0.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"
            kind = rng.random()
            fmt = "%Y-%m-%d %H:%M:%S"
            if kind < 0.6:  # double opt-in, confirmed a few minutes later
                confirm = optin + timedelta(seconds=rng.randrange(30, 3600))
                times = [optin.strftime(fmt), ip, confirm.strftime(fmt), ip]
                changed = confirm
            elif kind < 0.9:  # single opt-in on a form
                times = [optin.strftime(fmt), ip, "", ""]
                changed = optin
            else:  # added by hand in Mailchimp: no trace of the person
                times = ["", "", optin.strftime(fmt), ""]
                changed = optin
            writer.writerow(
                [
                    f"{ascii_name(first)}.{ascii_name(last)}.{i}@example.com",
                    first, last, "", "", rng.randrange(1, 6), *times,
                    "", "", "", "", "Europe/Paris", "FR", "", changed.strftime(fmt),
                    100000 + i, f"{i:010x}", "", "",
                ]
            )  # fmt: skip


def reset(own_database: bool, allowed: bool) -> None:
    from consents.models import Contact

    if Contact.objects.exists() and not (own_database or allowed):
        sys.exit("The database already holds contacts. Pass --reset to empty it.")
    truncate("consents_contact, consents_ledgeranchor, consents_importrun")


CHILD = """
import os, sys, time, django
sys.path.insert(0, {root!r})
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
django.setup()
from django.core.management import call_command
started = time.monotonic()
call_command(
    "import_contacts", {path!r}, preset="mailchimp", topic="newsletter", workers={workers}
)
elapsed = time.monotonic() - started
status = open("/proc/self/status").read()
peak = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmHWM:"))
import resource
usage = resource.getrusage(resource.RUSAGE_SELF)
children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the --workers processes
print(
    "RESULT", elapsed, peak, usage.ru_utime + usage.ru_stime,
    children.ru_utime + children.ru_stime, children.ru_maxrss,
)
"""


class BackendCPU:
    """The CPU seconds of the PostgreSQL backends serving one database on this host, sampled
    every ``every`` seconds while the import runs: a backend's process title names its database
    (``postgres: 15/main: user database host(port) ...``), and its CPU time is read from /proc
    until it exits (the last interval of each is lost: a few hundredths of a second). Other
    databases' backends on the same server (other work on the machine) are not counted, nor
    the server's WAL writer and checkpointer, which all its databases share."""

    def __init__(self, database: str, every: float = 0.05) -> None:
        self.marker = f" {database} ".encode()
        self.every = every
        self.seen: dict[int, int] = {}
        self.tick = os.sysconf("SC_CLK_TCK")
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    title = f.read()
                if not title.startswith(b"postgres: ") or self.marker not in title:
                    continue
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            self.seen[int(entry.name)] = int(fields[11]) + int(fields[12])  # utime + stime

    def _run(self) -> None:
        while not self.stopped.wait(self.every):
            self._sample()

    def __enter__(self) -> BackendCPU:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()

    @property
    def seconds(self) -> float:
        return sum(self.seen.values()) / self.tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--reset", action="store_true", help="empty a non-bench database first")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="import_contacts --workers: processes that read, map and write their own share of "
        "the file (default: the command's, one per CPU for a large file)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    own_database = "DATABASE_URL" not in os.environ
    if django_setup(DEFAULT_URL) != "postgresql":
        sys.exit("The import benchmark needs PostgreSQL (DATABASE_URL).")
    args.out.mkdir(parents=True, exist_ok=True)
    ensure_database()
    from django.db import connection

    migrate()
    reset(own_database, args.reset)
    from consents import services
    from consents.models import Topic

    if not Topic.objects.filter(slug="newsletter").exists():
        services.topic_create(
            slug="newsletter", purpose="newsletter", channels=["email"], name_fr="Lettre",
            name_en="Newsletter",
        )  # fmt: skip
    export = args.out / f"mailchimp_{args.rows}.csv"
    if not export.exists():
        log(f"writing a {args.rows:,}-row Mailchimp export to {export}")
        write_export(export, args.rows, args.seed)
    size = export.stat().st_size
    connection.close()

    load_before = os.getloadavg()
    log(f"importing ({size / 1e6:.0f} MB), load average {load_before}")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    database = connection.settings_dict["NAME"]
    with BackendCPU(database) as backends:
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD.format(root=str(ROOT), path=str(export), workers=args.workers),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if child.returncode != 0:
        sys.exit(child.stdout + child.stderr)
    result = next(line for line in child.stdout.splitlines() if line.startswith("RESULT"))
    _, elapsed, peak_kb, cpu, workers_cpu, workers_peak_kb = result.split()
    elapsed_s, peak_mb, cpu_s = float(elapsed), int(peak_kb) / 1024, float(cpu)
    workers_cpu_s, workers_peak_mb = float(workers_cpu), int(workers_peak_kb) / 1024
    load_after = os.getloadavg()
    postgres_s = backends.seconds
    print(child.stdout)

    log("verify_ledger")
    started = time.monotonic()
    verify = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "verify_ledger"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    verify_s = time.monotonic() - started
    results = {
        "rows": args.rows,
        "file_mb": round(size / 1e6, 1),
        "import_seconds": round(elapsed_s, 1),
        "rows_per_second": round(args.rows / elapsed_s),
        "peak_rss_mb": round(peak_mb, 1),
        # The import process's own CPU (PostgreSQL's is not in it): on a shared machine the wall
        # clock depends on the neighbours, this does not.
        "python_cpu_seconds": round(cpu_s, 1),
        "workers": args.workers if args.workers is not None else "the command's default",
        # The --workers processes: their CPU, and the peak memory of the largest.
        "workers_cpu_seconds": round(workers_cpu_s, 1),
        "workers_peak_rss_mb": round(workers_peak_mb, 1),
        "rows_per_python_cpu_second": round(args.rows / (cpu_s + workers_cpu_s)),
        "python_cpu_us_per_row": round((cpu_s + workers_cpu_s) / args.rows * 1e6, 1),
        # The CPU of the PostgreSQL backends of the import's database (when the server runs on
        # this host; 0 if not).
        "postgres_cpu_seconds": round(postgres_s, 1),
        "postgres_cpu_us_per_row": round(postgres_s / args.rows * 1e6, 1),
        "verify_ledger_seconds": round(verify_s, 1),
        "verify_ledger_ok": verify.returncode == 0,
        "verify_ledger": verify.stdout.strip().splitlines()[:2],
        "load_average_before": load_before,
        "load_average_after": load_after,
        "cpus": os.cpu_count(),
    }
    (args.out / "import.json").write_text(json.dumps(results, indent=2))
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:>{width}}: {value}")
    print("targets: rows_per_second >= 10,000; peak_rss_mb <= 300; verify_ledger_ok")


if __name__ == "__main__":
    main()
