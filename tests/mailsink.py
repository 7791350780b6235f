"""An email backend for tests that behaves like an email service honouring an idempotency key.

Every call is recorded; a message whose key (the outbox's idempotency header, else its
Message-ID) was already accepted is acknowledged again but not delivered twice. Everything is
written to files under ``MAILSINK_DIR`` (the setting, else the environment variable), so that a
test can read what a separate worker process sent, even after that process was killed.

``hold``: while a file of that name exists in the folder, the backend stops right after
accepting a message (it writes ``held``, then waits until ``hold`` is gone): the moment between
the provider's acceptance and the outbox row's update, for a test to kill the worker in.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend


def sink_dir() -> Path:
    path = Path(getattr(settings, "MAILSINK_DIR", "") or os.environ["MAILSINK_DIR"])
    (path / "accepted").mkdir(parents=True, exist_ok=True)
    return path


def _append(path: Path, line: str) -> None:
    # One write of one line with O_APPEND: whole lines, even from processes killed right after.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode() + b"\n")
    finally:
        os.close(fd)


def message_key(message: Any) -> str:
    headers = getattr(message, "extra_headers", {}) or {}
    header = settings.OUTBOX_IDEMPOTENCY_HEADER
    return str(
        (header and headers.get(header)) or headers.get("Message-ID") or f"none-{uuid.uuid4()}"
    )


class DedupingBackend(BaseEmailBackend):
    def send_messages(self, messages: Any) -> int:
        folder = sink_dir()
        for message in messages:
            key = message_key(message)
            to = ",".join(message.to)
            _append(folder / "calls.log", f"{key}\t{to}")
            # Accepted and delivered in one step (a process killed between the two would leave
            # a key accepted, so never delivered again, and its message delivered nowhere): the
            # delivery is written to a file of its own, then linked under the key, which fails
            # if the key was accepted already.
            draft = folder / f"draft-{uuid.uuid4().hex}"
            draft.write_text(f"{key}\t{to}\t{message.subject}\n")
            try:
                os.link(draft, folder / "accepted" / key)
            except FileExistsError:
                pass  # already accepted under this key: acknowledged, not delivered again
            finally:
                draft.unlink()
            message.anymail_status = SimpleNamespace(message_id=f"sink-{key}")
            if (folder / "hold").exists():
                _append(folder / "held", key)
                while (folder / "hold").exists():
                    time.sleep(0.05)
        return len(messages)


@dataclass
class Sink:
    """What the backend recorded."""

    folder: Path

    def _lines(self, name: str) -> list[list[str]]:
        path = self.folder / name
        if not path.exists():
            return []
        return [line.split("\t") for line in path.read_text().splitlines() if line]

    @property
    def calls(self) -> list[list[str]]:
        return self._lines("calls.log")

    @property
    def delivered(self) -> list[list[str]]:
        """One line per message delivered: the key, the recipients, the subject."""
        accepted = sorted((self.folder / "accepted").glob("*"), key=lambda p: p.stat().st_mtime_ns)
        return [p.read_text().rstrip("\n").split("\t") for p in accepted]

    def held(self) -> list[str]:
        return [line[0] for line in self._lines("held")]

    def hold(self) -> None:
        (self.folder / "hold").touch()

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.folder / "hold").unlink()
