"""What the benchmark scripts share: their log lines, Django and its database, the servers they
start, and wrk.

The scripts run as ``.venv/bin/python bench/<name>_bench.py`` (this folder is then first on
``sys.path``) and import it as ``harness``. Benchmarks only: nothing of Assent imports it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- Databases and Django (in the bench's own process) ------------------------------------------


def recreate_database(server_url: str, name: str, *, force: bool = False) -> None:
    """Drop and create database ``name`` on the PostgreSQL server at ``server_url`` (``force``:
    even with sessions still connected to it)."""
    import psycopg

    drop = f'DROP DATABASE IF EXISTS "{name}"' + (" WITH (FORCE)" if force else "")
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as admin:
        admin.execute(drop)
        admin.execute(f'CREATE DATABASE "{name}"')


def vacuum_between_runs(server_url: str, *names: str) -> None:
    """``VACUUM (ANALYZE)`` of databases ``names``, not timed, when the server's autovacuum is
    off (as on this machine's PostgreSQL): a run that updates the same few rows thousands of
    times (the preference page's saves) leaves their dead versions to the next run, which a
    server as deployed (autovacuum on, a pass a minute) would have cleaned away by then."""
    import psycopg

    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as admin:
        if admin.execute("SHOW autovacuum").fetchone()[0] == "on":
            return
    for name in names:
        with psycopg.connect(f"{server_url}/{name}", autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
    log(f"autovacuum is off on this server: {', '.join(names)} vacuumed (not timed)")


def django_setup(default_url: str) -> str:
    """Django set up on ``DATABASE_URL`` (``default_url`` when unset); its database's vendor."""
    os.environ.setdefault("DATABASE_URL", default_url)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection

    return connection.vendor


def ensure_database() -> None:
    """Create Django's database if it is missing (through the server's ``postgres`` database)."""
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    name = connection.settings_dict["NAME"]
    params = {k: v for k, v in params.items() if k not in ("cursor_factory", "context")}
    params["dbname"] = "postgres"
    with psycopg.connect(**params, autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            log(f"creating database {name}")
            admin.execute(f'CREATE DATABASE "{name}"')


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def truncate(tables: str) -> None:
    """``TRUNCATE <tables> RESTART IDENTITY CASCADE``. The ledger, its heads and its anchors
    refuse TRUNCATE; a benchmark database is emptied on purpose, by its owner, with the guard
    lifted for this one transaction."""
    from django.db import connection, transaction

    guarded = ("consents_event", "consents_chainhead", "consents_ledgeranchor")
    with transaction.atomic(), connection.cursor() as cursor:
        for table in guarded:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_no_truncate")
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        for table in guarded:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_no_truncate")


# --- Servers started as children ----------------------------------------------------------------


def server_env(
    *, drop: tuple[str, ...], database_url: str, secret_key: str, var_dir: Path, **settings: str
) -> dict[str, str]:
    """The environment of an Assent process of a bench: this one's without the variables that
    start with ``drop``, Assent as deployed (no debug, on 127.0.0.1), then ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": database_url,
            "DEBUG": "False",
            "SECRET_KEY": secret_key,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_COOKIES": "False",
            "VAR_DIR": str(var_dir),
            "LOG_LEVEL": "WARNING",
        }
    )
    env.update(settings)
    return env


def run(env: dict[str, str], *command: str) -> str:
    """A command run from the repository root; its standard output, or the bench stops."""
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server (gunicorn) in its own process group, bound to 127.0.0.1 on ``port`` (a spare one
    unless given): ``command`` is its command line but ``--bind``."""

    def __init__(
        self,
        name: str,
        command: list[str],
        cwd: Path,
        env: dict[str, str],
        port: int | None = None,
    ) -> None:
        self.name = name
        self.port = port or spare_port()
        self.process = subprocess.Popen(  # noqa: S603 - our own command line
            [*command, "--bind", f"127.0.0.1:{self.port}"],
            cwd=cwd, env=env, start_new_session=True,
        )  # fmt: skip

    def wait(self, path: str, tries: int = 150) -> None:
        """Until ``path`` answers 200 (a try every 0.2 s); the bench stops if it never does."""
        import http.client

        for _ in range(tries):
            if self.process.poll() is not None:
                sys.exit(f"{self.name} exited")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", path)
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        sys.exit(f"{self.name} did not answer {path}")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


# --- wrk ----------------------------------------------------------------------------------------


def wrk_figures(out: str) -> dict[str, Any]:
    """What wrk's output says: requests per second, requests, median latency, answers that were
    neither 2xx nor 3xx, socket errors, and the output itself (``raw``)."""

    def first(pattern: str) -> str | None:
        found = re.search(pattern, out, re.MULTILINE)
        return found.group(1) if found else None

    non2xx = first(r"Non-2xx or 3xx responses: (\d+)")
    return {
        "rps": float(first(r"Requests/sec:\s+([\d.]+)")),
        "requests": int(first(r"(\d+) requests in")),
        "p50": first(r"^\s+50%\s+(\S+)") or "",
        "non_2xx_3xx": int(non2xx) if non2xx else 0,
        "socket_errors": first(r"Socket errors: (.*)") or "",
        "raw": out,
    }


def wrk(
    port: int,
    path: str,
    *,
    seconds: int,
    threads: int = 2,
    connections: int = 4,
    script: Path | None = None,
    figures: tuple[str, ...] = ("rps", "p50", "non_2xx_3xx"),
) -> dict[str, Any]:
    """wrk against ``http://127.0.0.1:<port><path>`` (with a Lua ``script``): the ``figures``
    named, in that order (``wrk_figures``)."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    command.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    figures_of = wrk_figures(out)
    return {name: figures_of[name] for name in figures}
