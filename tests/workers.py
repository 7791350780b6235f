"""Helpers for tests that use real Celery components: the broker the web side publishes to, a
real worker process, and the mail files the file backend writes.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

import kombu.utils.functional
import redis
from django.conf import settings
from django.core.cache import cache
from kombu import pools

from config.celery import app
from consents.outbox import DRAIN_KEY

BASE_DIR = Path(settings.BASE_DIR)
# Nothing listens on port 1: connecting is refused at once.
UNREACHABLE_PORT = 1
UNREACHABLE_BROKER = f"redis://127.0.0.1:{UNREACHABLE_PORT}/0"
# What Django's file backend writes after each message.
MAIL_SEPARATOR = b"\n" + b"-" * 79 + b"\n"


def reset_broker_connections() -> None:
    """Forget every pooled broker connection and cached route, so the next publish connects
    afresh with the app's current configuration."""
    pools.reset()
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
        amqp._rtable = None
        amqp.__dict__.pop("router", None)


@contextlib.contextmanager
def celery_publishing(
    broker_url: str, *, eager: bool = False, queue: str | None = None
) -> Iterator[None]:
    """Make this process's Celery app publish to ``broker_url`` (and ``queue``), then restore.
    The outbox's drain key is released before and after: a drain another test queued to a queue
    nobody reads must not stand for this test's (``consents.outbox.DRAIN_KEY``)."""
    keys = ("broker_url", "task_always_eager", "task_routes")
    saved = {key: app.conf[key] for key in keys}
    app.conf.broker_url = broker_url
    app.conf.task_always_eager = eager
    if queue:
        app.conf.task_routes = {"consents.tasks.*": {"queue": queue}}
    reset_broker_connections()
    release_drain_key()
    try:
        yield
    finally:
        for key, value in saved.items():
            app.conf[key] = value
        reset_broker_connections()
        release_drain_key()


def release_drain_key() -> None:
    """Delete the outbox's drain key in the Redis of the settings, without going through the
    cache (a test may have pointed it at an unreachable address, whose outage it counts)."""
    if not settings.REDIS_URL:
        return
    with contextlib.suppress(redis.RedisError):
        redis.Redis.from_url(settings.REDIS_URL).delete(cache.make_key(DRAIN_KEY))


@dataclass
class Waits:
    """What a piece of code could have waited for, counted rather than timed (a test never
    asserts a wall-clock time): each connection attempt with the timeout its socket had (None:
    no timeout, it could hang), each sleep with its length."""

    connects: list[float | None] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    @property
    def longest_possible(self) -> float:
        """The longest the code could have waited on these: every attempt to its timeout."""
        bounded = [float("inf") if t is None else t for t in self.connects]
        return sum(bounded) + sum(self.sleeps)


@contextlib.contextmanager
def waits_counted(port: int) -> Iterator[Waits]:
    """Count the connection attempts to 127.0.0.1:``port`` and every sleep (``time.sleep``,
    and kombu's retry loop's own) made inside the block, letting them happen."""
    waits = Waits()
    connect = socket.socket.connect
    sleep = time.sleep

    def counted_connect(sock: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[1:2] == (port,):
            waits.connects.append(sock.gettimeout())
        return connect(sock, address)

    def counted_sleep(seconds: float) -> None:
        waits.sleeps.append(seconds)
        sleep(seconds)

    with (
        mock.patch.object(socket.socket, "connect", counted_connect),
        mock.patch.object(time, "sleep", counted_sleep),
        mock.patch.object(kombu.utils.functional, "sleep", counted_sleep),
    ):
        yield waits


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def read_mails(mail_dir: Path) -> list[EmailMessage]:
    """Every complete message in the file backend's directory (a file may hold several)."""
    messages = []
    for path in sorted(mail_dir.glob("*.log")) if mail_dir.is_dir() else []:
        chunks = path.read_bytes().split(MAIL_SEPARATOR)
        # The last chunk is empty when the file is complete, or a message still being written.
        for chunk in chunks[:-1]:
            messages.append(
                email.message_from_bytes(chunk.strip(b"\n"), policy=email.policy.default)
            )
    return messages


def text_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL naming the database this test process uses (the test database)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or "5432"
    return f"postgres://{credentials}{host}:{port}/{quote(settings_dict['NAME'], safe='')}"


class CeleryWorker:
    """A real ``celery worker`` process consuming one queue, logging to a file."""

    READY = re.compile(r"\bready\.")
    SUCCEEDED = re.compile(
        r"Task consents\.tasks\.outbox_send\[([0-9a-f-]+)\] succeeded in [^:]+: (.*)"
    )

    def __init__(self, *, queue: str, env: dict[str, str], log_path: Path) -> None:
        self.queue = queue
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        command = [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "-Q",
            self.queue,
            "-n",
            f"{self.queue}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own command line
                command,
                cwd=BASE_DIR,
                # What it queues itself (a drain's sends) goes to its own queue too.
                env={**self.env, "CELERY_QUEUE": self.queue},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so that stop() gets it all
            )

        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"the worker exited at start:\n{self.log()[-3000:]}")
            return bool(self.READY.search(self.log()))

        try:
            wait_for(ready, timeout=timeout, what="the Celery worker to be ready")
        except BaseException:
            self.stop()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def results(self) -> dict[str, str]:
        """Task id -> the repr of the value each finished ``outbox_send`` returned."""
        return {m.group(1): m.group(2).strip() for m in self.SUCCEEDED.finditer(self.log())}

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """``kill -9`` the worker and its children: no shutdown, no acknowledgement, nothing."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()  # warm shutdown
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def purge_queue(redis_url: str, queue: str) -> None:
    """Remove a test queue, its bindings and whatever is left in it from Redis.

    The queue name is unique to one test, so every key that contains it is that test's.
    """
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A Redis server of a test's own, on a port of its own, that the test stops and starts."""

    def __init__(self, *, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self, timeout: float = 10) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        command = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]
        log = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own command line
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        finally:
            if self.log_path:
                log.close()  # type: ignore[union-attr]
        wait_for(self.ping, timeout=timeout, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        wait_for(lambda: not self.ping(), timeout=10, what="redis-server to stop")
