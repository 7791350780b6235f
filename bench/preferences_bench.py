"""The preference-center benchmark: requests/s of the page against the floor. See PREFERENCES.md.

Needs PostgreSQL and ``wrk``. On a fresh database ``assent_prefs_bench`` it creates 20 topics (with
FR and EN notices) and a few people with some history, starts gunicorn (``config.wsgi``, 2 sync
workers, production settings, ``BENCH_FLOOR_VIEW=1``), and measures for ``--seconds`` each:

- GET ``/preferences/`` with a session opened by a preference link;
- POST ``/preferences/`` (the save form, each request ticking or unticking one box: one ledger
  event, its projections, the session's "saved" message); one person per wrk thread;
- GET ``/bench/floor/?n=N``: a bare Django view running the same number N of ``SELECT 1`` as the
  page's GET (counted here, with Django's query capture).

Twice: as deployed (Redis cache, the page served again while nothing on it changed: the
``get`` row, against a floor of the queries of such a read) and with the page cache off
(``PREFERENCE_PAGE_CACHE_SECONDS=0``: every GET draws the page, the ``get_drawn`` row, against a
floor of the queries of a drawing).

``--rounds N`` measures each N times, the floor and the page one right after the other (the one
that goes first alternating), after ``--warmup`` seconds of each not counted: each figure is then
the median run, each ratio the median of the rounds' ratios (``make bench-peer`` runs 3 rounds).

Target: GET >= 0.6 x floor. Prints a table and writes ``<out>/preferences.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

import harness
from harness import ROOT, log

BIN = Path(sys.executable).parent
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432"
DEFAULT_DB = "assent_prefs_bench"
TOPICS = 20
TARGET = 0.6


def server_env(args: argparse.Namespace) -> dict[str, str]:
    return harness.server_env(
        drop=("ANYMAIL_", "CELERY_", "EMAIL_", "DJANGO_", "REDIS_"),
        database_url=f"{args.server_url}/{args.database}",
        secret_key=args.secret_key,
        var_dir=args.out / "prefs-var",
        SITE_URL=f"http://127.0.0.1:{args.port}",
        CONN_MAX_AGE=str(args.conn_max_age),
        BENCH_FLOOR_VIEW="1",
        CELERY_TASK_ALWAYS_EAGER="True",
        EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend",
        # No email-service webhooks in the bench (production settings want their secret).
        EMAIL_TRACKING_WEBHOOKS="False",
        # As deployed: the Redis cache (rate limits, the page cache); tasks stay in-process.
        REDIS_URL=args.redis_url,
    )


# --- Child: seed the database and count the page's queries (runs with Django set up) ----------


def child_seed(people: int) -> None:
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from consents import clock, links, services

    for i in range(TOPICS):
        topic = services.topic_create(
            slug=f"topic-{i:02d}",
            purpose="promotion" if i % 2 else "newsletter",
            channels=["email", "sms", "postal"] if i % 3 else ["email", "sms", "push"],
            name_fr=f"Thème {i}",
            name_en=f"Topic {i}",
            description_fr="Nos nouveautés et nos offres, une fois par mois au plus.",
            description_en="What is new and our offers, once a month at most.",
            frequencies=["weekly", "monthly"],
        )
        for language in ("fr", "en"):
            services.notice_publish(
                topic=topic, language=language, text=f"J'accepte {i} / I agree {i}."
            )
    proof = services.Proof(method="web_form", actor="person", ip_address="203.0.113.1")
    tokens = []
    for p in range(people):
        contact = services.contact_create(
            email=f"bench{p}@example.fr",
            phone="+33612345678",
            collected_at=clock.now(),
            informed_at_collection=True,
        )
        services.purchase_record(contact=contact, category="books", product="b", proof=proof)
        for i in range(0, TOPICS, 2):
            services.consent_grant(
                contact=contact, topic=f"topic-{i:02d}", channel="email", proof=proof
            )
        services.consent_withdraw(contact=contact, topic="topic-01", channel="sms", proof=proof)
        tokens.append(links.make("preferences", contact))
    from django.conf import settings
    from django.core.cache import cache

    client = Client(HTTP_HOST="127.0.0.1")
    client.get(f"/preferences/{tokens[0]}/")
    cache.clear()
    # A process that has read the catalogue, as under load: its version (gone with the cache)
    # looked up again now, so that a later look-up finds the same one and reads nothing more
    # (else the count depended on whether a second went by, as it did once: 6 and 4 queries).
    from consents import catalogue

    catalogue._checked["version"] = None
    client.get("/preferences/")
    counts = []
    # Drawn (page cache off), then served again from the page cache.
    for seconds in (0, settings.PREFERENCE_PAGE_CACHE_SECONDS):
        settings.PREFERENCE_PAGE_CACHE_SECONDS = seconds
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/preferences/")
        assert response.status_code == 200, response.status_code
        counts.append(len(captured))
    print(json.dumps({"tokens": tokens, "queries_drawn": counts[0], "queries_kept": counts[1]}))


# --- Parent ---------------------------------------------------------------------------------------


def request(port: int, method: str, path: str, cookie: str = "", body: str = "") -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Cookie": cookie} if cookie else {}
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body or None, headers=headers)
    response = conn.getresponse()
    response.read_body = response.read()  # type: ignore[attr-defined]
    conn.close()
    return response


def cookies_of(response: Any) -> dict[str, str]:
    jar = {}
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        jar[name.strip()] = rest.split(";", 1)[0]
    return jar


def open_session(port: int, token: str) -> tuple[str, str]:
    """A browser that opened its link: (Cookie header, the save form's urlencoded body)."""
    from urllib.parse import urlencode

    jar = cookies_of(request(port, "GET", f"/preferences/{token}/"))
    cookie = f"sessionid={jar['sessionid']}"
    page = request(port, "GET", "/preferences/", cookie)
    jar.update(cookies_of(page))
    html = page.read_body.decode()
    cookie += f"; csrftoken={jar['csrftoken']}"
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    form = html[html.index('name="action" value="save"') :]
    form = form[: form.index("</form>")]
    fields: list[tuple[str, str]] = [("csrfmiddlewaretoken", csrf), ("action", "save")]
    fields += [("shown", v) for v in re.findall(r'name="shown" value="([^"]+)"', form)]
    for tag, value in re.findall(r'(<input type="checkbox" name="on" value="([^"]+)"[^>]*>)', form):
        if " checked" in tag and " disabled" not in tag and value != "topic-02:sms":
            fields.append(("on", value))
    for name, value in re.findall(
        r'<input type="hidden" name="(notice-[^"]+)" value="(\d+)"', form
    ):
        fields.append((name, value))
    return cookie, urlencode(fields)


def lua_get(cookie: str) -> str:
    return f'wrk.method = "GET"\nwrk.headers["Cookie"] = "{cookie}"\n'


def lua_post(sessions: list[tuple[str, str]]) -> str:
    """Each wrk thread is one person; its requests alternately tick and untick one box."""
    rows = ",\n".join(f'  {{cookie = "{c}", body = "{b}"}}' for c, b in sessions)
    return f"""
local sessions = {{
{rows}
}}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
end
function init(args)
  me = sessions[tonumber(index)]
  flip = false
end
function request()
  flip = not flip
  local body = me.body
  if flip then body = body .. "&on=topic-02%3Asms" end
  return wrk.format("POST", "/preferences/", {{
    ["Cookie"] = me.cookie,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }}, body)
end
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-url", default=DEFAULT_SERVER)
    parser.add_argument("--database", default=DEFAULT_DB)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--post-threads", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--conn-max-age", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=1, help="rounds of each measure (median)")
    parser.add_argument("--warmup", type=int, default=0, help="seconds per measure, not counted")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument(
        "--pair-port", type=int, default=0,
        help="a server already running (bench/peer_bench.py's peer) whose POST is measured "
        "right beside each save (``peer_post``)",
    )  # fmt: skip
    parser.add_argument("--pair-path", default="", help="that POST's path")
    parser.add_argument("--pair-script", type=Path, help="that POST's wrk script")
    parser.add_argument("--child-seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_seed:
        child_seed(args.child_seed)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    args.secret_key = secrets.token_urlsafe(38)[:50]
    args.port = harness.spare_port()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prefs-var").mkdir(exist_ok=True)

    log(f"fresh database {args.database}, migrate, {TOPICS} topics")
    harness.recreate_database(args.server_url, args.database)
    harness.run(server_env(args), str(BIN / "python"), "manage.py", "migrate", "--noinput", "-v0")
    seeded = json.loads(
        harness.run(
            server_env(args),
            str(BIN / "python"),
            str(Path(__file__)),
            "--child-seed",
            str(1 + args.post_threads),
        )
    )
    log(
        f"the page's GET runs {seeded['queries_drawn']} queries when drawn, "
        f"{seeded['queries_kept']} when served again"
    )
    results: dict[str, Any] = {
        "topics": TOPICS,
        "queries_drawn": seeded["queries_drawn"],
        "queries_kept": seeded["queries_kept"],
    }
    scripts = args.out / "prefs-lua"
    scripts.mkdir(exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {}
    # As deployed, then with every GET drawing the page (the cold path: a first visit, a change).
    for cache_seconds, get_name, floor_name, queries in [
        ("600", "get", "floor", seeded["queries_kept"]),
        ("0", "get_drawn", "floor_drawn", seeded["queries_drawn"]),
    ]:
        env = {**server_env(args), "PREFERENCE_PAGE_CACHE_SECONDS": cache_seconds}
        log(f"gunicorn, {args.workers} workers, port {args.port}, page cache {cache_seconds} s")
        server = harness.Server(
            "gunicorn",
            [str(BIN / "gunicorn"), "config.wsgi", "-w", str(args.workers), "--log-level",
             "warning"],
            ROOT, env, args.port,
        )  # fmt: skip
        try:
            server.wait("/healthz", tries=100)
            get_cookie, _body = open_session(args.port, seeded["tokens"][0])
            assert request(args.port, "GET", "/preferences/", get_cookie).status == 200
            assert request(args.port, "GET", f"/bench/floor/?n={queries}").status == 200
            (scripts / "get.lua").write_text(lua_get(get_cookie))
            # (measure, port, path, wrk script, wrk threads)
            plan = [
                (floor_name, args.port, f"/bench/floor/?n={queries}", None, 2),
                (get_name, args.port, "/preferences/", scripts / "get.lua", 2),
            ]
            if cache_seconds != "0":
                # Served again, the page makes the floor's round trips: its one query brings
                # the session with the contact, and Redis is not asked (pagecache.prefetch).
                posters = [open_session(args.port, t) for t in seeded["tokens"][1:]]
                (scripts / "post.lua").write_text(lua_post(posters))
                post = ("post", args.port, "/preferences/", scripts / "post.lua", len(posters))
                plan.append(post)
                if args.pair_port:
                    # The peer's POST right beside each save (before it, then after it): each
                    # round's ratio compares two runs seconds apart, as the sign-up's do.
                    plan.append(("peer_post", args.pair_port, args.pair_path, args.pair_script, 2))
            if args.warmup:
                for name, port, path, script, threads in plan:
                    log(f"{name}: warming up ({args.warmup} s, not counted)")
                    harness.wrk(port, path, seconds=args.warmup, threads=threads,
                                connections=args.connections, script=script)  # fmt: skip
            for number in range(args.rounds):
                harness.vacuum_between_runs(args.server_url, args.database)
                # The floor and the page one right after the other, the first alternating.
                for name, port, path, script, threads in plan if number % 2 == 0 else plan[::-1]:
                    log(f"{name}: {args.seconds} s, {args.connections} connections")
                    runs.setdefault(name, []).append(
                        harness.wrk(
                            port, path, seconds=args.seconds, threads=threads,
                            connections=args.connections, script=script,
                            figures=("rps", "p50", "non_2xx_3xx", "socket_errors", "raw"),
                        )
                    )  # fmt: skip
                    log(f"{name}: {runs[name][-1]['rps']:.1f} requests/s")
        finally:
            server.stop()
    # Each measure's median run; each ratio, the median of the rounds' (runs seconds apart).
    for name, measured in runs.items():
        results[name] = sorted(measured, key=lambda r: r["rps"])[len(measured) // 2]
        results[f"{name}_rps_per_round"] = [r["rps"] for r in measured]
    for ratio, page, floor in [
        ("get_over_floor", "get", "floor"),
        ("get_drawn_over_floor", "get_drawn", "floor_drawn"),
        ("post_over_floor", "post", "floor"),
    ]:
        each = [a["rps"] / f["rps"] for a, f in zip(runs[page], runs[floor], strict=True)]
        results[ratio] = statistics.median(each)
        results[f"{ratio}_per_round"] = each
    results["rounds"] = args.rounds
    results["target"] = TARGET
    results["load_average"] = os.getloadavg()
    (args.out / "preferences.json").write_text(json.dumps(results, indent=2))
    print()
    print("| measure | queries | requests/s | p50 | non-2xx/3xx |")
    print("|---|---:|---:|---:|---:|")
    rows = [
        ("floor", results["queries_kept"]),
        ("get", results["queries_kept"]),
        ("post", ""),
        ("floor_drawn", results["queries_drawn"]),
        ("get_drawn", results["queries_drawn"]),
    ]
    for name, queries in rows:
        r = results[name]
        print(f"| {name} | {queries} | {r['rps']:.1f} | {r['p50']} | {r['non_2xx_3xx']} |")
    ratio = results["get_over_floor"]
    verdict = "meets" if ratio >= TARGET else "misses"
    rounds = f" (median of {args.rounds} rounds: " if args.rounds > 1 else " ("

    def each(name: str) -> str:
        return ", ".join(f"{r:.2f}" for r in results[f"{name}_per_round"]) + "; "

    print(
        f"\nGET / floor = {ratio:.2f}{rounds}{each('get_over_floor')}{verdict} the target {TARGET})"
    )
    print(
        f"GET drawn every time / its floor = {results['get_drawn_over_floor']:.2f}{rounds}"
        f"{each('get_drawn_over_floor')}target 0.25)"
    )
    print(f"load average after the run: {results['load_average']}")


if __name__ == "__main__":
    main()
