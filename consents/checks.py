from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

# As for SECRET_KEY: shorter keys can be guessed, and a guessed key signs forged anchors.
MIN_ANCHOR_KEY_LENGTH = 32


@register(Tags.security, deploy=True)
def ledger_anchor_key_check(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Anchors are only as good as their key: one the database, and who can read it, never sees."""
    key = settings.LEDGER_ANCHOR_KEY
    if not key:
        return [
            Warning(
                "LEDGER_ANCHOR_KEY is not set: ledger anchors are signed with a key derived from "
                "SECRET_KEY, which every web process holds, and rotating SECRET_KEY would leave "
                "the past anchors unverifiable.",
                hint="Set LEDGER_ANCHOR_KEY to a random string of 32 characters or more, given "
                "only to the Celery workers and to whoever runs manage.py verify_ledger; keep a "
                "copy outside the servers. If anchors exist already, run manage.py "
                "anchor_ledger --force once: from then on, anchors are signed with the new key.",
                id="assent.W001",
            )
        ]
    if len(key) < MIN_ANCHOR_KEY_LENGTH:
        return [
            Error(
                f"LEDGER_ANCHOR_KEY is shorter than {MIN_ANCHOR_KEY_LENGTH} characters: whoever "
                "guesses it can sign a rewritten ledger.",
                hint="python -c 'import secrets; print(secrets.token_urlsafe(48))'",
                id="assent.E002",
            )
        ]
    return []
