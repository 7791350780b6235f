"""Read the mail that Django's file backend wrote, for ``/dev/mail/`` (embedded default only)."""

from __future__ import annotations

import email
import email.policy
import ipaddress
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path

from django.conf import settings

FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
# The file backend ends every message with a line of 79 dashes (one file per connection).
SEPARATOR = re.compile(rb"^-{79}$", re.MULTILINE)
# Names the file backend gives its files, e.g. 20260110-101500-140234.log; nothing else is read.
FILE_NAME = re.compile(r"^[\w-]{1,100}\.log$")
SHOWN_HEADERS = (
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Date",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)


@dataclass(frozen=True)
class Mail:
    name: str
    index: int
    subject: str
    to: str
    sender: str
    date: datetime | None
    text: str
    html: str
    headers: list[tuple[str, str]]

    @property
    def shown_headers(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.headers if k in SHOWN_HEADERS]

    @property
    def html_for_frame(self) -> str:
        """The HTML part, with its links opening in the whole window rather than the frame."""
        base = '<base target="_top">'
        head = re.search(r"<head[^>]*>", self.html, re.IGNORECASE)
        if head:
            return self.html[: head.end()] + base + self.html[head.end() :]
        return base + self.html


def enabled() -> bool:
    return bool(settings.DEBUG) and settings.EMAIL_BACKEND == FILE_BACKEND


def writes_files() -> bool:
    """Mail goes to files (shown at /dev/mail/ only with DEBUG, written whatever DEBUG says)."""
    return settings.EMAIL_BACKEND == FILE_BACKEND


def shown_to(client_ip: str | None) -> bool:
    """The mail holds live links to people's preferences: it is shown on the embedded default
    only, and only to a browser on this machine (a laptop's runserver reachable on a network
    must not hand them to its neighbours)."""
    if not enabled() or not client_ip:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack server
    return address.is_loopback


def mail_dir() -> Path:
    return Path(settings.EMAIL_FILE_PATH)


def _part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, UnicodeDecodeError):
        return part.get_payload(decode=True).decode("utf-8", "replace")


def parse_file(path: Path) -> list[Mail]:
    mails = []
    chunks = [c.strip(b"\n") for c in SEPARATOR.split(path.read_bytes())]
    for index, chunk in enumerate(c for c in chunks if c):
        message = email.message_from_bytes(chunk, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        try:
            date = parsedate_to_datetime(str(message["Date"])) if message["Date"] else None
        except (TypeError, ValueError):
            date = None
        mails.append(
            Mail(
                name=path.name,
                index=index,
                subject=str(message["Subject"] or ""),
                to=str(message["To"] or ""),
                sender=str(message["From"] or ""),
                date=date,
                text=_part(message, "plain"),
                html=_part(message, "html"),
                headers=[(k, str(v)) for k, v in message.items()],
            )
        )
    return mails


def _files() -> list[Path]:
    folder = mail_dir()
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and FILE_NAME.match(p.name)]
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name), reverse=True)


def mail_list(limit: int = 200) -> list[Mail]:
    """The newest mail first."""
    mails: list[Mail] = []
    for path in _files():
        mails.extend(reversed(parse_file(path)))
        if len(mails) >= limit:
            break
    return mails[:limit]


def mail_file(name: str) -> list[Mail] | None:
    """The messages of one file, or None. Only a name listed in the folder is ever opened."""
    if not FILE_NAME.match(name):
        return None
    path = next((p for p in _files() if p.name == name), None)
    return parse_file(path) if path else None


def _recipients(chunk: bytes) -> set[str]:
    message = email.message_from_bytes(chunk, policy=email.policy.default)
    fields = [str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])]
    return {address.lower() for _, address in getaddresses(fields) if address}


def forget_addresses(addresses: Iterable[str]) -> int:
    """Remove every message sent to one of ``addresses`` from the mail files (an erased person's
    mail); a file left with none goes. Returns how many messages were removed."""
    wanted = {a.strip().lower() for a in addresses if "@" in a}
    if not wanted:
        return 0
    removed = 0
    for path in _files():
        chunks = [c.strip(b"\n") for c in SEPARATOR.split(path.read_bytes())]
        chunks = [c for c in chunks if c]
        kept = [c for c in chunks if not (_recipients(c) & wanted)]
        if len(kept) == len(chunks):
            continue
        removed += len(chunks) - len(kept)
        if not kept:
            path.unlink(missing_ok=True)
            continue
        # As the file backend writes them: each message, a newline, 79 dashes, a newline.
        data = b"".join(c + b"\n" + b"-" * 79 + b"\n" for c in kept)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    return removed
