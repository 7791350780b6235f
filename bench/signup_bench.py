"""The sign-up benchmark: does the sign-up POST wait for the email service? See bench/SIGNUP.md.

Needs PostgreSQL and Redis. For each email backend (``instant``, then ``slow``: 2 s per message)
it starts gunicorn (``config.wsgi``, 2 workers) and one real Celery worker (prefork, concurrency
1) on a fresh database ``assent_signup_bench``, then posts the ``/subscribe/`` form N times, one
after the other, each with a unique address and one ticked choice, timing each POST until its
302 answer. Target: median(slow) <= 1.5 x median(instant).

Then emails/s: with the instant backend, rows are queued through ``signup_submit`` while no
worker runs; one worker is started and timed until every row is ``sent``.

Prints a table and writes ``<out>/signup.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import harness
from harness import ROOT, log, spare_port

BIN = Path(sys.executable).parent
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432"
DEFAULT_DB = "assent_signup_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379"
BACKENDS = {"instant": "bench.backends.InstantBackend", "slow": "bench.backends.SlowBackend"}
TARGET_RATIO = 1.5
# Marks a Redis database as this benchmark's, so that it only ever empties its own.
REDIS_MARKER = "assent-signup-bench:owner"


class Interrupted(Exception):
    pass


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Interrupted(f"signal {signum}")


# --- Environment, database, Redis -----------------------------------------------------------------


def redis_db(args: argparse.Namespace, backend: str) -> int:
    """Each stack has its own Redis database: its own queue and rate-limit cache."""
    return args.redis_db + list(BACKENDS).index(backend)


def server_env(args: argparse.Namespace, backend: str, port: int | None = None) -> dict[str, str]:
    """The environment of every Assent process of the bench: production-like, rate limits off."""
    env = harness.server_env(
        drop=("ANYMAIL_", "CELERY_", "SIGNUP_", "EMAIL_", "DJANGO_"),
        database_url=f"{args.server_url}/{args.database}",
        secret_key=args.secret_key,
        var_dir=args.out / "signup-var",
        REDIS_URL=f"{args.redis_url}/{redis_db(args, backend)}",
        SIGNUP_MAX_PER_IP_PER_HOUR="100000000",
        SIGNUP_MAX_EMAILS_PER_ADDRESS="100000000",
        EMAIL_BACKEND=BACKENDS[backend],
        # No email-service webhooks in the bench (production settings want their secret).
        EMAIL_TRACKING_WEBHOOKS="False",
        BENCH_SLOW_EMAIL_SECONDS=str(args.slow_seconds),
        DEMO_PASSWORD=secrets.token_urlsafe(16),
    )
    if args.conn_max_age is not None:
        env["CONN_MAX_AGE"] = str(args.conn_max_age)
    else:
        env.pop("CONN_MAX_AGE", None)
    if port is not None:
        env["SITE_URL"] = f"http://127.0.0.1:{port}"
    return env


def db_query(args: argparse.Namespace, sql: str, params: tuple[Any, ...] = ()) -> Any:
    import psycopg

    with psycopg.connect(f"{args.server_url}/{args.database}", autocommit=True) as conn:
        return conn.execute(sql, params).fetchone()


def manage(args: argparse.Namespace, *command: str) -> None:
    done = subprocess.run(  # noqa: S603 - our own command line
        [sys.executable, str(ROOT / "manage.py"), *command],
        cwd=ROOT,
        env=server_env(args, "instant"),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(command)} failed:\n{done.stdout}{done.stderr}")


def redis_claim_and_flush(args: argparse.Namespace, backend: str) -> None:
    """Empty a Redis database of the bench; refuse one that holds someone else's keys."""
    import redis

    db = redis_db(args, backend)
    client = redis.Redis.from_url(f"{args.redis_url}/{db}")
    try:
        if client.dbsize() and not client.exists(REDIS_MARKER):
            sys.exit(
                f"Redis database {db} is not empty and not this benchmark's: choose others "
                "with --redis-db (it uses that one and the next)."
            )
        client.flushdb()
        client.set(REDIS_MARKER, "bench/signup_bench.py")
    finally:
        client.close()


# --- Processes ------------------------------------------------------------------------------------


class Process:
    """A child in its own process group, logging to a file; ``stop()`` always ends it."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.log_path = log_path
        with log_path.open("wb") as out:
            self.popen = subprocess.Popen(  # noqa: S603 - our own command line
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            tail = self.log()[-3000:]
            raise RuntimeError(f"{self.name} exited ({self.popen.returncode}):\n{tail}")

    def stop(self, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            # gunicorn: graceful stop; celery: warm shutdown (waits for the task in progress).
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop in {timeout} s: SIGKILL")
        # Whatever is left of its group (pool children, gunicorn workers).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (the Celery pool), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    pids, total = [pid], 0.0
    for path in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = path.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:  # ppid
                pids.append(int(path.parent.name))
    for p in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def start_worker(args: argparse.Namespace, backend: str, tag: str) -> Process:
    worker = Process(
        f"celery worker ({tag})",
        [
            str(BIN / "celery"),
            "-A",
            "config",
            "worker",
            "--concurrency=1",
            "--pool=prefork",
            "-n",
            f"signup-bench-{tag}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
        ],
        server_env(args, backend),
        args.out / f"signup-{tag}-worker.log",
    )

    def ready() -> bool:
        worker.check_alive()
        return bool(re.search(r"\bready\.", worker.log()))

    wait_until(ready, 60, f"the {tag} Celery worker")
    return worker


def start_gunicorn(args: argparse.Namespace, backend: str, port: int) -> Process:
    server = Process(
        f"gunicorn ({backend})",
        [
            str(BIN / "gunicorn"),
            "config.wsgi",
            "--workers",
            str(args.gunicorn_workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--error-logfile",
            "-",
        ],
        server_env(args, backend, port),
        args.out / f"signup-{backend}-gunicorn.log",
    )

    def healthy() -> bool:
        server.check_alive()
        try:
            status, _headers, body = http_request(port, "GET", "/healthz")
        except OSError:
            return False
        return status == 200 and json.loads(body).get("status") == "ok"

    wait_until(healthy, 60, "gunicorn /healthz", interval=0.2)
    return server


# --- HTTP client ----------------------------------------------------------------------------------


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


class FormParser(HTMLParser):
    """The CSRF token and the email choices offered by the ``/subscribe/`` form."""

    def __init__(self) -> None:
        super().__init__()
        self.csrf = ""
        self.choices: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "input":
            return
        a = dict(attrs)
        if a.get("name") == "csrfmiddlewaretoken":
            self.csrf = a.get("value") or ""
        elif a.get("name") == "choice" and (a.get("value") or "").endswith(":email"):
            self.choices.append(a["value"] or "")


USER_AGENT = "assent-signup-bench/1 (http.client)"


def get_form(port: int) -> tuple[str, str, list[str]]:
    status, headers, body = http_request(
        port, "GET", "/subscribe/", headers={"User-Agent": USER_AGENT}
    )
    if status != 200:
        raise RuntimeError(f"GET /subscribe/ answered {status}: {body[:500]!r}")
    cookie = ""
    for value in headers.get_all("Set-Cookie") or []:
        match = re.match(r"\s*csrftoken=([^;]+)", value)
        if match:
            cookie = match.group(1)
    parser = FormParser()
    parser.feed(body.decode())
    if not (cookie and parser.csrf and parser.choices):
        raise RuntimeError("the /subscribe/ form has no CSRF cookie, token or email choice")
    return cookie, parser.csrf, parser.choices


def signup_post(port: int, email: str) -> tuple[float, int, str]:
    """GET the form (untimed), then POST it: (seconds until the answer, status, Location)."""
    cookie, token, choices = get_form(port)
    body = urlencode(
        {
            "csrfmiddlewaretoken": token,
            "email": email,
            "first_name": "",
            "phone": "",
            "language": "fr",
            "choice": choices[0],
            "website": "",
        }
    ).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"csrftoken={cookie}",
        "User-Agent": USER_AGENT,
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        started = time.perf_counter()
        conn.request("POST", "/subscribe/", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    return elapsed, response.status, response.headers.get("Location", "")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


# --- Phases ---------------------------------------------------------------------------------------


def outbox_counts(args: argparse.Namespace, first_id: int, like: str = "%") -> dict[str, int]:
    row = db_query(
        args,
        "SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = "
        "'pending'), count(*) FROM consents_outbox WHERE id > %s AND \"to\" LIKE %s",
        (first_id, like),
    )
    return {"sent": row[0], "pending": row[1], "rows": row[2]}


def max_outbox_id(args: argparse.Namespace) -> int:
    return db_query(args, "SELECT coalesce(max(id), 0) FROM consents_outbox")[0]


def block_order(blocks: int) -> list[str]:
    """instant, slow | slow, instant | instant, slow ...: each backend goes first as often."""
    order: list[str] = []
    for n in range(blocks):
        pair = list(BACKENDS)
        order += pair if n % 2 == 0 else pair[::-1]
    return order


def latency_phase(args: argparse.Namespace, run_id: str) -> dict[str, Any]:
    """Both stacks run side by side; the POSTs go to one at a time, in alternating blocks.

    A stack that is not being posted to is idle (the slow worker sleeps through its backlog),
    and before a slow block the instant worker has finished its sends: each block measures its
    own stack, while load from outside the bench falls on both backends alike.
    """
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        ports: dict[str, int] = {}
        processes: list[Process] = []
        for backend in BACKENDS:
            log(
                f"[{backend}] starting gunicorn ({args.gunicorn_workers} workers) and one "
                f"Celery worker (Redis db {redis_db(args, backend)})"
            )
            redis_claim_and_flush(args, backend)
            ports[backend] = spare_port()
            worker = start_worker(args, backend, backend)
            stack.callback(worker.stop)
            server = start_gunicorn(args, backend, ports[backend])
            stack.callback(server.stop)
            processes += [worker, server]
            for i in range(args.warmup):
                email = f"warmup-{run_id}-{backend}-{i}@bench.test"
                _elapsed, status, _location = signup_post(ports[backend], email)
                if status != 302:
                    raise RuntimeError(f"{backend} warm-up POST answered {status}")
        first_id = max_outbox_id(args)
        blocks = max(1, math.ceil(args.requests / args.block))
        times: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
        loads: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
        log(
            f"{args.requests} sign-up POSTs per backend (after {args.warmup} warm-up ones), in "
            f"alternating blocks of {args.block}"
        )

        def instant_idle() -> bool:
            return outbox_counts(args, 0, f"%-{run_id}-instant-%")["pending"] == 0

        previous = ""
        for backend in block_order(blocks):
            if previous == "instant":
                wait_until(instant_idle, 60, "the instant worker to finish its sends", 0.02)
            previous = backend
            todo = min(args.block, args.requests - len(times[backend]))
            loads[backend].append(os.getloadavg()[0])
            for _ in range(todo):
                i = len(times[backend])
                email = f"s-{run_id}-{backend}-{i}@bench.test"
                elapsed, status, location = signup_post(ports[backend], email)
                if status != 302 or not location.endswith("/subscribe/done/"):
                    raise RuntimeError(f"{backend} POST {i}: {status} {location!r}, not 302")
                times[backend].append(elapsed)
            for process in processes:
                process.check_alive()
        for backend in BACKENDS:
            t = times[backend]
            # Evidence of where the sends happen: with the slow backend most are still queued.
            outbox = outbox_counts(args, first_id, f"s-{run_id}-{backend}-%")
            results[backend] = {
                "backend": BACKENDS[backend],
                "requests": len(t),
                "median_ms": round(statistics.median(t) * 1000, 2),
                "p95_ms": round(p95(t) * 1000, 2),
                "mean_ms": round(statistics.fmean(t) * 1000, 2),
                "min_ms": round(min(t) * 1000, 2),
                "max_ms": round(max(t) * 1000, 2),
                "outbox_at_end": outbox,
                "load_average_at_each_block": loads[backend],
                "block_medians_ms": [
                    round(statistics.median(t[k : k + args.block]) * 1000, 1)
                    for k in range(0, len(t), args.block)
                ],
                "all_ms": [round(x * 1000, 2) for x in t],
            }
            log(
                f"[{backend}] median {results[backend]['median_ms']} ms, p95 "
                f"{results[backend]['p95_ms']} ms; its outbox rows at the end: sent "
                f"{outbox['sent']}, pending {outbox['pending']}"
            )
        log("stopping both stacks")
    return results


def child_enqueue(count: int, run_id: str) -> None:
    """Runs with the bench's environment: ``count`` sign-ups through ``signup_submit``."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from preferences.services import SignupOutcome, signup_submit

    started = time.perf_counter()
    for i in range(count):
        outcome = signup_submit(
            email=f"e-{run_id}-{i}@bench.test",
            choices=[("newsletter", "email")],
            collection_point="http://127.0.0.1/subscribe/",
            ip_address="127.0.0.1",
            user_agent=USER_AGENT,
        )
        if outcome is not SignupOutcome.CONFIRMATION_SENT:
            sys.exit(f"sign-up {i}: {outcome}")
    print(json.dumps({"seconds": time.perf_counter() - started}))


def emails_phase(args: argparse.Namespace, run_id: str) -> dict[str, Any]:
    redis_claim_and_flush(args, "instant")
    first_id = max_outbox_id(args)
    log(f"[emails/s] queueing {args.emails} confirmation emails (signup_submit), no worker running")
    done = subprocess.run(  # noqa: S603 - our own command line
        [sys.executable, __file__, "--child-enqueue", str(args.emails), "--run-id", run_id],
        cwd=ROOT,
        env=server_env(args, "instant"),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"enqueueing failed:\n{done.stdout}\n{done.stderr}")
    enqueue_s = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    queued = outbox_counts(args, first_id)
    if queued["rows"] != args.emails or queued["pending"] != args.emails:
        raise RuntimeError(f"expected {args.emails} pending rows, found {queued}")
    log("[emails/s] starting one Celery worker (instant backend)")
    with contextlib.ExitStack() as stack:
        started = time.perf_counter()
        worker = start_worker(args, "instant", "emails")
        stack.callback(worker.stop)
        ready = time.perf_counter()
        cpu_before = tree_cpu_seconds(worker.popen.pid)
        load_before = os.getloadavg()[0]

        def all_sent() -> bool:
            worker.check_alive()
            return outbox_counts(args, first_id)["sent"] >= args.emails

        wait_until(all_sent, 60 + args.emails / 5, "every row to be sent", interval=0.1)
        finished = time.perf_counter()
        cpu = tree_cpu_seconds(worker.popen.pid) - cpu_before
        load_after = os.getloadavg()[0]
    span = db_query(
        args,
        "SELECT extract(epoch FROM max(sent_at) - min(sent_at)) FROM consents_outbox WHERE id > %s",
        (first_id,),
    )[0]
    seconds = finished - ready
    result = {
        "emails": args.emails,
        "enqueue_s": round(enqueue_s, 2),
        "worker_start_s": round(ready - started, 2),
        "seconds_from_ready_to_all_sent": round(seconds, 2),
        "emails_per_s": round(args.emails / seconds, 1),
        "first_to_last_sent_at_s": round(float(span), 2),
        # Load-independent: what the worker's processes spent (not PostgreSQL's or Redis's).
        "worker_cpu_s": round(cpu, 2),
        "worker_cpu_ms_per_email": round(cpu / args.emails * 1000, 2),
        "emails_per_s_by_sent_at": round((args.emails - 1) / float(span), 1) if span else None,
        "load_average_before": load_before,
        "load_average_after": load_after,
    }
    log(f"[emails/s] {result['emails_per_s']} emails/s ({args.emails} in {seconds:.1f} s)")
    return result


# --- Report ---------------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> str:
    inst, slow, em = results["instant"], results["slow"], results.get("emails")
    ratio = results["ratio"]
    slow_s = results["config"]["slow_seconds"]
    lines = [
        f"{'measure':<48}{'value':>14}{'target':>12}  result",
        "-" * 82,
        f"{'sign-up POST median, instant backend':<48}{inst['median_ms']:>11.1f} ms",
        f"{'sign-up POST median, slow backend (' + f'{slow_s:g} s/send)':<48}"
        f"{slow['median_ms']:>11.1f} ms",
        f"{'ratio slow / instant (medians)':<48}{ratio:>13.2f}x{'<= 1.5x':>12}"
        f"  {'met' if ratio <= TARGET_RATIO else 'MISSED'}",
        f"{'sign-up POST p95, instant / slow':<48}{inst['p95_ms']:.1f} / {slow['p95_ms']:.1f} ms",
        f"{'  median of the per-block ratios':<48}{results['ratio_of_block_medians']:>13.2f}x",
    ]
    for name, r in (("instant", inst), ("slow", slow)):
        lines.append(
            f"{'  its outbox rows when the POSTs ended, ' + name:<48}"
            f"sent {r['outbox_at_end']['sent']}, pending {r['outbox_at_end']['pending']}"
        )
    if em:
        lines += [
            f"{'emails/s, one worker (prefork, 1), instant':<48}{em['emails_per_s']:>9.1f} /s",
            f"{'  ' + str(em['emails']) + ' rows, ready to all sent':<48}"
            f"{em['seconds_from_ready_to_all_sent']:>12.1f} s"
            f"   (by sent_at: {em['emails_per_s_by_sent_at']} /s)",
            f"{'  worker CPU (parent + pool) per email':<48}"
            f"{em['worker_cpu_ms_per_email']:>11.1f} ms",
        ]
    c = results["config"]
    m = results["machine"]
    conn_max_age = "Assent's default" if c["conn_max_age"] is None else c["conn_max_age"]
    lines += [
        "-" * 82,
        f"{c['requests']} POSTs per backend, one at a time, in alternating blocks of {c['block']} "
        f"(after {c['warmup']} warm-up), each after an untimed GET;",
        f"per backend: gunicorn {c['gunicorn_workers']} sync workers + 1 Celery worker "
        f"(prefork, 1); CONN_MAX_AGE {conn_max_age};",
        f"PostgreSQL database {c['database']}, Redis dbs {c['redis_db']}-{c['redis_db'] + 1}; "
        f"{m['cpus']} CPUs, load average {m['load_average_before']:.2f} at start",
    ]
    return "\n".join(lines)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed POSTs per backend")
    parser.add_argument("--warmup", type=int, default=10, help="untimed POSTs first, each")
    parser.add_argument(
        "--block",
        type=int,
        default=20,
        help="POSTs per block; blocks alternate between the backends (>= --requests: one each)",
    )
    parser.add_argument(
        "--conn-max-age", type=int, help="CONN_MAX_AGE for every process (default: Assent's)"
    )
    parser.add_argument("--emails", type=int, default=2000, help="rows for emails/s (0: skip)")
    parser.add_argument("--slow-seconds", type=float, default=2.0, help="slow backend, per send")
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--server-url", default=DEFAULT_SERVER, help="PostgreSQL, no database")
    parser.add_argument("--database", default=DEFAULT_DB, help="dropped and recreated")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help="Redis, no database number")
    parser.add_argument(
        "--redis-db", type=int, default=11, help="this one and the next: emptied, the bench's own"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--child-enqueue", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--run-id", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_enqueue is not None:
        child_enqueue(args.child_enqueue, args.run_id)
        return
    args.server_url = args.server_url.rstrip("/")
    args.redis_url = args.redis_url.rstrip("/")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    args.secret_key = secrets.token_urlsafe(50)[:50]
    run_id = secrets.token_hex(3)

    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {
            "requests": args.requests,
            "warmup": args.warmup,
            "slow_seconds": args.slow_seconds,
            "gunicorn_workers": args.gunicorn_workers,
            "celery_worker": "prefork, concurrency 1",
            "block": args.block,
            "conn_max_age": args.conn_max_age,
            "database": args.database,
            "redis_db": args.redis_db,
        },
        "machine": {"cpus": os.cpu_count(), "load_average_before": os.getloadavg()[0]},
    }
    with signals_raise():
        log(f"recreating database {args.database}, migrate, demo_data")
        harness.recreate_database(args.server_url, args.database, force=True)
        manage(args, "migrate", "--noinput")
        manage(args, "demo_data", "--allow-production")
        results.update(latency_phase(args, run_id))
        results["ratio"] = round(results["slow"]["median_ms"] / results["instant"]["median_ms"], 3)
        results["target_met"] = results["ratio"] <= TARGET_RATIO
        pairs = zip(
            results["instant"]["block_medians_ms"], results["slow"]["block_medians_ms"], strict=True
        )
        results["ratio_of_block_medians"] = round(statistics.median(s / i for i, s in pairs), 3)
        if args.emails:
            results["emails"] = emails_phase(args, run_id)
        for backend in BACKENDS:
            redis_claim_and_flush(args, backend)
    table = report(results)
    results["table"] = table.splitlines()
    (args.out / "signup.json").write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table)
    print(f"\nwritten to {args.out / 'signup.json'}")


if __name__ == "__main__":
    main()
