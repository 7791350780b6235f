"""Reading another tool's export: its rows (CSV or XLSX), and the values in them (instants, IP
addresses, yes/no), as the peers write them."""

from __future__ import annotations

import csv
import hashlib
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class ImportError_(Exception):  # noqa: N801 - ``ImportError`` is Python's
    """The file as a whole cannot be imported (its format, a missing column, an unknown topic)."""


def file_digest(path: Path) -> tuple[str, int]:
    """The file's SHA-256 and its number of lines (for the progress bar), in one pass."""
    digest = hashlib.sha256()
    lines = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            lines += chunk.count(b"\n")
    return digest.hexdigest(), lines


def read_rows(path: Path) -> Iterator[dict[str, str]]:
    """The file's rows as dicts keyed by the header; CSV (comma or semicolon, UTF-8) streamed,
    XLSX through tablib."""
    if path.suffix.lower() == ".xlsx":
        yield from _read_xlsx(path)
        return
    records = csv_records(path)
    header = next(records)
    for values in records:
        yield dict(zip(header, [v.strip() for v in values]))  # noqa: B905 - longer: cut


def csv_records(path: Path) -> Iterator[list[str]]:
    """A CSV file's stripped header, then each non-blank line's values as they are (not
    stripped), at least as many as the header names: ``read_rows``' rows before they are dicts
    (csv.DictReader's rows: a short row's missing values are "", a long row's extra ones dropped
    by ``zip``, blank lines skipped)."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        sample = f.readline()
        if not sample.strip():
            raise ImportError_("The file is empty.")
        delimiter = ";" if sample.count(";") > sample.count(",") else ","
        f.seek(0)
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = [name.strip() for name in next(reader, [])]
            yield header
            width = len(header)
            for values in reader:
                if not values:
                    continue
                if len(values) < width:
                    values += [""] * (width - len(values))
                yield values
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ImportError_(
                f"Line {reader.line_num}: the file is not readable CSV ({exc})."
            ) from exc


def _read_xlsx(path: Path) -> Iterator[dict[str, str]]:
    import tablib

    try:
        with path.open("rb") as f:
            data = tablib.Dataset().load(f, format="xlsx")
    except Exception as exc:
        raise ImportError_(f"The file is not a readable XLSX workbook ({exc}).") from exc
    headers = [str(h or "").strip() for h in data.headers or []]
    for values in data:
        yield {h: _cell(v) for h, v in zip(headers, values, strict=False) if h}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value).strip()


def parse_instant(value: str) -> datetime | None:
    """An instant as the peers export them: ISO 8601 (``2024-03-05 14:22:10``, with or without an
    offset; Mailchimp's and Brevo's are UTC) or ``05-03-2024 14:22``; None when empty."""
    value = value.strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
        for pattern in (
            "%d-%m-%Y %H:%M:%S",
            "%d-%m-%Y %H:%M",
            "%d/%m/%Y %H:%M:%S",
            "%d/%m/%Y %H:%M",
        ):
            try:
                parsed = datetime.strptime(value, pattern)
                break
            except ValueError:
                continue
        if parsed is None:
            raise ValueError(value) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_ip(value: str) -> str | None:
    """A valid IP address as given, or None (an address the source mangled is no evidence)."""
    value = value.strip()
    if not value:
        return None
    # inet_pton, in C, is a fraction of the cost of ``ipaddress`` on a million rows.
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, value)
        except OSError:
            continue
        return value
    return None


def parse_yes(value: str) -> bool:
    return value.strip().lower() in ("1", "yes", "true", "oui", "y", "x")
