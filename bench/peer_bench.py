"""Assent's public pages against django-newsletter 1.2.1's subscribe page, in one run.

Needs PostgreSQL, Redis and ``wrk``. Each side runs under gunicorn (``--workers`` sync workers,
default 2), production settings (``DEBUG`` off), PostgreSQL on 127.0.0.1 with ``CONN_MAX_AGE``
60, and is measured with wrk (2 threads, 4 connections, ``--seconds`` each, default 8). Both servers
are started and warmed up (``--warmup`` seconds of each page, not counted), then measured in
``--rounds`` rounds (default 3): in each, a page on one side right after the same page on the
other, the side that goes first alternating. Each round gives a ratio of two runs seconds apart;
the figure is the median of the rounds, and every round is printed:

- **django-newsletter 1.2.1**, installed from PyPI into a throwaway virtualenv (``--peer-venv``,
  default ``/tmp/assent-peer-venv``; never committed) with Django 5.2 and gunicorn, in a tiny
  project this script writes next to it (one newsletter, Django's dummy email backend, its
  activation email sent in the request): GET and POST of ``/newsletter/news/subscribe/``, each
  POST a new address (a subscription row and its activation email).
- **Assent**, on a fresh database with 3 topics and their notices (FR and EN), rate limits off,
  as deployed: the confirmation email is written to the outbox and queued for a Celery worker
  (the Redis database given is the broker; no worker runs, the queue is purged afterwards), where
  the peer sends its activation email in the request: GET and POST of ``/subscribe/``, each POST
  a new address with one choice (the pending opt-in in the ledger with its evidence and
  projections, the pending sign-up, the outbox row).
- **The preference page**: ``bench/preferences_bench.py`` in the same run (drawn, served again,
  a save), with the same wrk settings.

Prints a table with the median ratios and each round's, and writes ``<out>/peer.json``. The
preference page (its own rounds, after these, the peer's server kept running): each of its
saves against the peer's POST measured right beside it (``preferences_bench --pair-port``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import harness
from harness import ROOT, log

BIN = Path(sys.executable).parent
PEER = "django-newsletter==1.2.1"
TARGETS = {"signup_get": 1.0, "signup_post": 0.8, "save": 0.8}


def lua_post(path: str, cookie: str, body: str, field: str) -> str:
    """POST ``body`` with a new address in ``field`` each time (per thread and counter)."""
    return f"""
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end
function init(args)
  me = tonumber(thread_number) or 0
  salt = os.time()
end
function request()
  counter = counter + 1
  local email = string.format("p%d-%d-%d%%40bench.example", me, salt, counter)
  return wrk.format("POST", "{path}", {{
    ["Cookie"] = "{cookie}",
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Origin"] = "http://127.0.0.1:" .. "{{port}}",
  }}, "{body}&{field}=" .. email)
end
"""


def form_of(port: int, path: str) -> tuple[str, list[tuple[str, str]], str]:
    """(Cookie header, the form's fields, its HTML) of a GET."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    html = response.read().decode()
    jar = {}
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        jar[name.strip()] = rest.split(";", 1)[0]
    cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)
    return cookie, hidden, html


# --- The peer -----------------------------------------------------------------------------------

PEER_SETTINGS = """
import os
SECRET_KEY = os.environ["PEER_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sites",
    "django.contrib.sessions", "django.contrib.messages", "sorl.thumbnail", "newsletter",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "peerproj.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
DATABASES = {"default": {
    "ENGINE": "django.db.backends.postgresql", "NAME": os.environ["PEER_DB"],
    "USER": "postgres", "HOST": "127.0.0.1", "PORT": "5432", "CONN_MAX_AGE": 60,
}}
SITE_ID = 1
USE_TZ = True
EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
"""
PEER_URLS = """
from django.urls import include, path
urlpatterns = [path("newsletter/", include("newsletter.urls"))]
"""
PEER_WSGI = """
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerproj.settings")
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
"""


def peer_setup(args: argparse.Namespace) -> tuple[Path, Path, dict[str, str]]:
    venv = args.peer_venv
    python = venv / "bin" / "python"
    if not (venv / "bin" / "gunicorn").exists():
        log(f"installing {PEER} into {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", PEER, "sorl-thumbnail",
             "Django>=5.2,<5.3", "gunicorn", "psycopg[binary]"],
            check=True,
        )  # fmt: skip
    project = venv / "project"
    (project / "peerproj").mkdir(parents=True, exist_ok=True)
    (project / "peerproj" / "__init__.py").write_text("")
    (project / "peerproj" / "settings.py").write_text(PEER_SETTINGS)
    (project / "peerproj" / "urls.py").write_text(PEER_URLS)
    (project / "peerproj" / "wsgi.py").write_text(PEER_WSGI)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
        "DJANGO_SETTINGS_MODULE": "peerproj.settings",
        "PEER_SECRET_KEY": secrets.token_urlsafe(40),
        "PEER_DB": args.peer_database,
        "PYTHONPATH": str(project),
        "PYTHONWARNINGS": "ignore",
    }
    harness.recreate_database(args.server_url, args.peer_database)
    manage = [str(python), "-m", "django"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=project, env=env, check=True)
    subprocess.run(
        [*manage, "shell", "-c",
         "from django.contrib.sites.models import Site; from newsletter.models import Newsletter;"
         " n = Newsletter.objects.create(title='News', slug='news', email='news@example.org',"
         " sender='News', visible=True); n.site.set([Site.objects.get_current()])"],
        cwd=project, env=env, check=True,
    )  # fmt: skip
    return python, project, env


def start_peer(args: argparse.Namespace, scripts: Path) -> Side:
    python, project, env = peer_setup(args)
    server = harness.Server(
        "django-newsletter",
        [str(args.peer_venv / "bin" / "gunicorn"), "peerproj.wsgi", "--workers",
         str(args.workers), "--log-level", "warning"],
        project, env,
    )  # fmt: skip
    path = "/newsletter/news/subscribe/"
    try:
        server.wait(path)
        cookie, hidden, _ = form_of(server.port, path)
        body = urlencode([*hidden, ("name_field", "Marie")])
        script = scripts / "peer-post.lua"
        script.write_text(
            lua_post(path, cookie, body, "email_field").replace("{port}", str(server.port))
        )
    except BaseException:
        server.stop()
        raise
    return Side("django-newsletter", server, path, script)


# --- Assent -------------------------------------------------------------------------------------


def child_seed() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from consents import services

    for slug, channels in (
        ("newsletter", ["email", "postal"]),
        ("promotions", ["email", "sms", "push", "phone", "postal"]),
        ("new-products", ["email", "sms", "push"]),
    ):
        topic = services.topic_create(
            slug=slug, purpose="promotion", channels=channels, name_fr=slug.title(),
            name_en=slug.title(), frequencies=[],
        )  # fmt: skip
        for language, text in (("fr", "J’accepte de recevoir"), ("en", "I agree to receive")):
            services.notice_publish(topic=topic, language=language, text=f"{text} {slug}.")


def assent_env(args: argparse.Namespace) -> dict[str, str]:
    return harness.server_env(
        drop=("ANYMAIL_", "CELERY_", "SIGNUP_", "EMAIL_", "DJANGO_", "REDIS_"),
        database_url=f"{args.server_url}/{args.database}",
        secret_key=secrets.token_urlsafe(40),
        var_dir=args.out / "peer-var",
        REDIS_URL=args.redis_url,
        # As deployed: the request queues the confirmation email for a worker (the broker is the
        # Redis database given; this run purges its queue afterwards).
        CELERY_TASK_ALWAYS_EAGER="False",
        SIGNUP_MAX_PER_IP_PER_HOUR="100000000",
        SIGNUP_MAX_EMAILS_PER_ADDRESS="100000000",
        EMAIL_BACKEND="bench.backends.InstantBackend",
        EMAIL_TRACKING_WEBHOOKS="False",
        DEMO_PASSWORD=secrets.token_urlsafe(16),
        CONN_MAX_AGE="60",
    )


def start_assent(args: argparse.Namespace, scripts: Path) -> Side:
    env = assent_env(args)
    harness.recreate_database(args.server_url, args.database)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT,
                   env=env, check=True)  # fmt: skip
    subprocess.run([sys.executable, __file__, "--child-seed"], cwd=ROOT, env=env, check=True)
    server = harness.Server(
        "assent",
        [str(BIN / "gunicorn"), "config.wsgi", "--workers", str(args.workers), "--log-level",
         "warning"],
        ROOT, env,
    )  # fmt: skip
    path = "/subscribe/"
    try:
        server.wait("/healthz")
        cookie, hidden, html = form_of(server.port, path)
        choice = re.search(r'name="choice" value="(newsletter:email)"', html)
        assert choice, "the sign-up page offers newsletter by email"
        body = urlencode([*hidden, ("first_name", "Marie"), ("language", "fr"), ("phone", ""),
                          ("website", ""), ("choice", "newsletter:email")])  # fmt: skip
        script = scripts / "assent-post.lua"
        script.write_text(lua_post(path, cookie, body, "email").replace("{port}", str(server.port)))
    except BaseException:
        server.stop()
        raise
    return Side("Assent", server, path, script)


@dataclass
class Side:
    """One side of the comparison: its server (started), the sign-up's path, the POST's script."""

    name: str
    server: harness.Server
    path: str
    script: Path

    def measure(self, page: str, seconds: int) -> dict[str, Any]:
        script = self.script if page == "signup_post" else None
        return harness.wrk(self.server.port, self.path, seconds=seconds, script=script)


PAGES = (("signup_get", "sign-up GET"), ("signup_post", "sign-up POST"))


def measure_rounds(args: argparse.Namespace, sides: list[Side]) -> dict[str, Any]:
    """Both sides warmed (a short run of each page, not counted), then ``args.rounds`` rounds:
    each page on one side right after the other, the side that goes first alternating. Each
    round's ratio compares two runs a few seconds apart; the median of the rounds is the
    figure (a neighbour's burst on this shared host moves one run, not the median)."""
    for side in sides:
        for page, label in PAGES:
            log(f"{side.name}: {label}, warming up ({args.warmup} s, not counted)")
            side.measure(page, args.warmup)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        s.name: {p: [] for p, _ in PAGES} for s in sides
    }
    for number in range(args.rounds):
        harness.vacuum_between_runs(args.server_url, args.database, args.peer_database)
        order = sides if number % 2 == 0 else sides[::-1]
        for page, label in PAGES:
            for side in order:
                log(f"round {number + 1}/{args.rounds}, {side.name}: {label}")
                runs[side.name][page].append(side.measure(page, args.seconds))
    return runs


def _each(ratios: list[float]) -> str:
    return ", ".join(f"{r:.2f}" for r in ratios)


def purge_queue(redis_url: str) -> None:
    """Drop the confirmation emails this run queued (no worker sends them)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("celery*"):
        client.delete(key)
    for key in ("celery", "_kombu.binding.celery"):
        client.delete(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="assent_peer_bench")
    parser.add_argument("--peer-database", default="assent_peer_bench_newsletter")
    parser.add_argument("--prefs-database", default="assent_prefs_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    parser.add_argument("--peer-venv", type=Path, default=Path("/tmp/assent-peer-venv"))
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both sides (median)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds per page, not counted")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-preferences", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--child-seed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_seed:
        return child_seed()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    args.out.mkdir(parents=True, exist_ok=True)
    scripts = args.out / "peer-lua"
    scripts.mkdir(exist_ok=True)
    sides: list[Side] = []
    prefs: dict[str, Any] = {}
    try:
        sides.append(start_peer(args, scripts))
        sides.append(start_assent(args, scripts))
        runs = measure_rounds(args, sides)
        sides.pop().server.stop()  # Assent's sign-up; the peer stays for the saves' rounds
        purge_queue(args.redis_url)
        if not args.skip_preferences:
            log("the preference page (bench/preferences_bench.py), the peer's POST by each save")
            peer_side = sides[0]
            subprocess.run(
                [sys.executable, "bench/preferences_bench.py", "--database", args.prefs_database,
                 "--redis-url", args.redis_url, "--seconds", str(args.seconds),
                 "--connections", "4", "--rounds", str(args.rounds), "--warmup",
                 str(args.warmup), "--out", str(args.out),
                 "--pair-port", str(peer_side.server.port), "--pair-path", peer_side.path,
                 "--pair-script", str(peer_side.script)],
                cwd=ROOT, check=True,
            )  # fmt: skip
            prefs = json.loads((args.out / "preferences.json").read_text())
    finally:
        for side in sides:
            side.server.stop()
        purge_queue(args.redis_url)
    peer, assent = runs["django-newsletter"], runs["Assent"]
    # Per page: each round's ratio (two runs seconds apart), and their median.
    rows = [
        ("sign-up form, GET", assent["signup_get"], peer["signup_get"], TARGETS["signup_get"]),
        ("sign-up, POST (one topic)", assent["signup_post"], peer["signup_post"],
         TARGETS["signup_post"]),
    ]  # fmt: skip
    if prefs:
        # Its own rounds, after these: each save against the peer's POST measured beside it.
        saves = [{"rps": rps} for rps in prefs["post_rps_per_round"]]
        beside = [{"rps": rps} for rps in prefs["peer_post_rps_per_round"]]
        rows.append(("preference page, save", saves, beside, TARGETS["save"]))
    ratios = {
        name: [a["rps"] / p["rps"] for a, p in zip(ours, theirs, strict=True)]
        for name, ours, theirs, _ in rows
    }
    result = {
        "peer": peer, "assent": assent, "preferences": prefs, "rounds": args.rounds,
        "ratios": {name: statistics.median(r) for name, r in ratios.items()},
        "ratios_per_round": ratios,
        "cpus": os.cpu_count(), "load_average": os.getloadavg(),
    }  # fmt: skip
    (args.out / "peer.json").write_text(json.dumps(result, indent=2))
    print()
    print(f"Medians of {args.rounds} rounds (each round: both sides, one right after the other)")
    print()
    print("| page | Assent | django-newsletter 1.2.1 | ratio (median) | each round | target |")
    print("|---|---:|---:|---:|---|---:|")
    for name, ours, theirs, target in rows:
        a = statistics.median(r["rps"] for r in ours)
        p = statistics.median(r["rps"] for r in theirs)
        print(
            f"| {name} | {a:.0f} req/s | {p:.0f} req/s "
            f"| {statistics.median(ratios[name]):.2f} | {_each(ratios[name])} | {target} |"
        )
    if prefs:
        print(
            f"\npreference page drawn / its floor: {prefs['get_drawn_over_floor']:.2f} "
            f"(target 0.25; rounds {_each(prefs['get_drawn_over_floor_per_round'])}); "
            f"served again / its floor: {prefs['get_over_floor']:.2f} "
            f"(target 0.6; rounds {_each(prefs['get_over_floor_per_round'])})"
        )


if __name__ == "__main__":
    main()
