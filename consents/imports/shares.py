"""An import in several processes, each reading, mapping and writing its own share of the file.

A row's share is a hash of its address, upper-cased as the importer groups a contact's rows
(``normalize_email``'s result, upper-cased), so that every row of one contact is in one share:
its contact is created once, its events chained in file order, and its idempotency and
suppression look-ups made by the process that writes it. Every process reads the whole file but
builds and maps only the rows of its share, in batches of the same rows of the file as one
process would make (a batch's share in each process), on its own connection; the main process
receives each batch's plans (small tuples, not the contacts and their events), merges them in
the order one process reports them, and reports them (the counts, the issues, ``on_row``,
the progress).

A file in which one source id (or address) names rows of two shares cannot be split that way:
one process would record both where one process records the first and reports the second as
unchanged or a conflict. The main process reads the file once first (``plan``) and, for such a
file, the import runs as before.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import connection, connections

from consents import services
from consents.imports.reading import ImportError_, csv_records

if TYPE_CHECKING:  # pragma: no cover
    from consents.imports.importer import RowPlan, _Importer

# The address column, and the columns of the source's own id for a row, by preset (the mappers'
# ``Mapped.key``: the first id given, else the address).
EMAIL_COLUMN = {"mailchimp": "Email Address", "brevo": "EMAIL", "assent": "email"}
ID_COLUMNS = {"mailchimp": ("EUID", "LEID"), "brevo": ("CONTACT ID",), "assent": ("source_id",)}
# Batches a worker may have sent ahead of the main process (bounds the memory of the plans).
AHEAD = 4
# A file of this many lines is imported by one process per CPU unless told otherwise
# (``import_contacts`` without ``--workers``): below, the processes save little.
AUTO_LINES = 100_000


def automatic(lines: int, *, dry_run: bool) -> int:
    """The processes for an import of ``lines`` lines when the caller leaves it to the import:
    one per CPU for a large file written to PostgreSQL outside a transaction, from a process
    that may start others (not a daemon, such as a Celery worker's child); else one."""
    if (
        lines < AUTO_LINES
        or dry_run
        or connection.vendor != "postgresql"
        or connection.in_atomic_block
        or multiprocessing.current_process().daemon
    ):
        return 1
    return max(1, os.cpu_count() or 1)


def address_key(raw: str) -> str | None:
    """``normalize_email(raw).upper()``, cheaply for an ASCII address (whose normal form differs
    from the trimmed text only by the domain's case); None for an address it refuses."""
    value = raw.strip()
    if value.isascii():
        return value.upper()
    try:
        return services.normalize_email(value).upper()
    except ValidationError:
        return None


def share_of(raw: str, shares: int) -> int:
    """The share of a row by its address (a row whose address is refused: share 0)."""
    key = address_key(raw)
    return zlib.crc32(key.encode()) % shares if key is not None else 0


def _last_index(header: list[str], name: str) -> int | None:
    # A name given twice: the dict of a row keeps the last column's value (``read_rows``).
    for i in range(len(header) - 1, -1, -1):
        if header[i] == name:
            return i
    return None


def plan(path: Path, preset: str, shares: int) -> int | None:
    """The number of rows of a file that splits into ``shares`` shares; None if it does not (an
    XLSX file, a column missing, no rows, or a row's idempotency key shared with a row of another
    share)."""
    if path.suffix.lower() == ".xlsx":
        return None
    records = csv_records(path)
    header = next(records)
    email = _last_index(header, EMAIL_COLUMN[preset])
    if email is None:
        return None  # the importer says which column is missing
    ids = [i for i in (_last_index(header, c) for c in ID_COLUMNS[preset]) if i is not None]
    assent = preset == "assent"
    # The share of every key seen: a hash of the key (a collision only sends the file the slow
    # way), against a share number.
    claimed: dict[int, int] = {}
    rows = 0
    try:
        for values in records:
            rows += 1
            value = values[email].strip()
            if value.isascii():
                normal: str | None = value  # but for the domain's case, which no key keeps
                key: str | None = value.upper()
            else:
                try:
                    normal = services.normalize_email(value)
                except ValidationError:
                    normal = None
                key = normal.upper() if normal is not None else None
            share = zlib.crc32(key.encode()) % shares if key is not None else 0
            source_id = next((values[i].strip() for i in ids if values[i].strip()), "")
            if source_id:
                if assent and "|" in source_id:
                    return None  # might be spelt like an Assent row's own key (address|topic|…)
                name = source_id
            elif assent or normal is None:
                continue  # an Assent row's own key begins with its address; a refused row: none
            else:
                name = normal.lower()  # the mappers' key without a source id
            if claimed.setdefault(hash(name), share) != share:
                return None
    except ImportError_:
        return None  # an unreadable line: one process reads up to it, as it always has
    return rows or None


def own_batches(
    path: Path, preset: str, share: int, shares: int, size: int
) -> Iterator[tuple[int, list[tuple[int, dict[str, str]]]]]:
    """(batch number, this share's rows of it, numbered as one process numbers them), for every
    batch of ``size`` rows of the file, an empty share included."""
    records = csv_records(path)
    header = next(records)
    email = _last_index(header, EMAIL_COLUMN[preset])
    assert email is not None
    batch: list[tuple[int, dict[str, str]]] = []
    number, count = 0, 0
    for values in records:
        if count and count % size == 0:
            yield number, batch
            batch, number = [], number + 1
        count += 1
        if share_of(values[email], shares) == share:
            # Row numbers as a spreadsheet shows them: the header is row 1.
            batch.append((count + 1, dict(zip(header, [v.strip() for v in values]))))  # noqa: B905
    if count:
        yield number, batch


def run(
    importer: _Importer,
    path: Path,
    *,
    rows: int,
    batch_rows: int,
    make_plan: Callable[..., RowPlan],
    progress: Callable[[int, int], None] | None,
    lines: int,
) -> None:
    """The import of ``rows`` rows by ``importer.workers`` processes, reported by this one."""
    shares = importer.workers
    context = multiprocessing.get_context("fork")
    results: Any = context.Queue()
    slots = [context.Semaphore(AHEAD) for _ in range(shares)]
    connections.close_all()  # each process opens its own connection
    processes = [
        context.Process(
            target=_work,
            args=(importer, path, share, shares, batch_rows, results, slots[share]),
            daemon=True,
        )
        for share in range(shares)
    ]
    for process in processes:
        process.start()
    try:
        pending: dict[tuple[int, int], list[tuple[Any, ...]]] = {}
        done = 0
        for number in range(math.ceil(rows / batch_rows)):
            plans: list[tuple[Any, ...]] = []
            for share in range(shares):
                plans.extend(_receive(results, processes, pending, (share, number)))
                slots[share].release()
            plans.sort(key=lambda p: (p[0], p[1]))  # the order one process reports them in
            for p in plans:
                importer._report(make_plan(*p[1:]))
            done = min(rows, done + batch_rows)
            if progress is not None:
                progress(done, lines)
        for process in processes:
            process.join()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join()
        results.close()


def _receive(
    results: Any,
    processes: list[Any],
    pending: dict[tuple[int, int], list[tuple[Any, ...]]],
    wanted: tuple[int, int],
) -> list[tuple[Any, ...]]:
    ended = False
    while wanted not in pending:
        try:
            share, number, payload = results.get(timeout=1)
        except queue.Empty:
            for process in processes:
                if process.exitcode not in (None, 0):
                    raise ImportError_(
                        f"a process of the import stopped (exit code {process.exitcode})"
                    ) from None
            if ended:
                # Each sent everything before it ended: the file changed while it was read.
                raise ImportError_("the file ended before its last batch was read") from None
            # Once every process has ended, one more wait for what they sent last.
            ended = all(process.exitcode == 0 for process in processes)
            continue
        if number == -1:
            raise ImportError_(payload)
        pending[(share, number)] = payload
    return pending.pop(wanted)


def _work(
    importer: _Importer,
    path: Path,
    share: int,
    shares: int,
    batch_rows: int,
    results: Any,
    slot: Any,
) -> None:
    """One share of the import, in its own process (forked: ``importer`` is a copy)."""
    connections.close_all()
    importer.workers = 1
    importer.on_row = None
    importer.sink = []
    try:
        for number, batch in own_batches(path, importer.ctx.preset, share, shares, batch_rows):
            importer.batch(batch)
            sent, importer.sink = importer.sink, []
            slot.acquire()
            results.put((share, number, sent))
    except Exception as exc:  # told to the main process, which fails the import
        results.put((share, -1, str(exc) or type(exc).__name__))
    finally:
        connections.close_all()
        results.close()
        results.join_thread()
