"""Imports run in a worker (the admin's confirmation, the API): the uploaded file kept until its
import runs, the import recorded and queued, then executed by the task
``consents.tasks.import_contacts``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from consents import bulk, clock
from consents.imports.importer import import_run_create, run
from consents.imports.presets import PRESETS, check_topic, topic_channels
from consents.imports.reading import ImportError_, file_digest
from consents.models import ImportRun

SUFFIXES = (".csv", ".xlsx")


def import_store(*, chunks: Iterable[bytes], filename: str) -> Path:
    """Keep an uploaded file until its import runs (``import_queue`` deletes it afterwards),
    named by its SHA-256 under ``VAR_DIR/imports``."""
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValidationError({"file": "Give a .csv or .xlsx file."})
    folder = Path(settings.VAR_DIR) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    partial = folder / f"upload-{clock.now().timestamp()}-{id(chunks)}{suffix}"
    with partial.open("wb") as f:
        for chunk in chunks:
            digest.update(chunk)
            f.write(chunk)
    stored = folder / f"{digest.hexdigest()}{suffix}"
    partial.replace(stored)
    return stored


@transaction.atomic
def import_queue(
    *,
    path: Path,
    preset: str,
    topic: str,
    actor: str,
    webhooks: bool = False,
    filename: str = "",
    locale: str = "fr",
) -> ImportRun:
    """Record an import to run, and run it in a worker once this transaction commits; its record
    (``ImportRun.status``, counts, report) says how it went. ``path`` is deleted afterwards."""
    if preset not in PRESETS:
        raise ValidationError({"preset": f"One of {', '.join(PRESETS)}."})
    topics = topic_channels()
    try:
        check_topic(preset, topic, topics)
    except ImportError_ as exc:
        raise ValidationError({"topic": str(exc)}) from exc
    import_run = import_run_create(
        path=path,
        preset=preset,
        topic=topic,
        actor=actor,
        webhooks=webhooks,
        filename=filename,
        sha256=file_digest(path)[0],
        created_at=clock.now(),
    )
    options = {"locale": locale}
    transaction.on_commit(lambda: _queue(import_run.pk, str(path), options))
    return import_run


def _queue(run_id: int, path: str, options: dict[str, Any]) -> None:
    from consents.tasks import import_contacts

    import_contacts.apply_async(args=[run_id, path, options], retry=False)


def import_execute(*, run_id: int, path: Path, locale: str = "fr") -> ImportRun:
    """Run a queued import (the worker's side of ``import_queue``)."""
    import_run = ImportRun.objects.get(pk=run_id)
    if import_run.status != ImportRun.Status.QUEUED:
        return import_run  # run already (a redelivered task)
    try:
        run(
            path,
            preset=import_run.preset,
            topic=import_run.topic,
            actor=import_run.actor,
            webhooks=import_run.webhooks,
            locale=locale,
            import_run=import_run,
        )
    except (ImportError_, bulk.BulkError, OSError) as exc:
        import_run.refresh_from_db()
        if import_run.status != ImportRun.Status.FAILED:
            import_run.status = ImportRun.Status.FAILED
            import_run.error = str(exc)[:2000]
            import_run.save(update_fields=["status", "error"])
    finally:
        path.unlink(missing_ok=True)
    import_run.refresh_from_db()
    return import_run
