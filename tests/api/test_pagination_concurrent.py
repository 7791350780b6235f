"""The ledger's pages hold still while events are recorded (PostgreSQL, real transactions)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from consents import services

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_pages_never_skip_or_repeat_an_event_under_concurrent_writes(
    api: Any, make_contact: Any
) -> None:
    person = make_contact()
    for _ in range(10):
        services.interaction_record(contact=person, kind="click", proof=services.Proof(actor="t"))
    stop = threading.Event()
    written = []

    def writer() -> None:
        try:
            while not stop.is_set() and len(written) < 200:
                e = services.interaction_record(
                    contact=person, kind="open", proof=services.Proof(actor="t")
                )
                written.append(e.seq)
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    c = api(["contacts:read"])
    seen: list[int] = []
    cursor = None
    try:
        for _ in range(200):
            url = f"/api/v1/contacts/{person.public_id}/events?limit=3"
            page = c.get(url + (f"&cursor={cursor}" if cursor else "")).json()
            seen += [e["seq"] for e in page["events"]]
            if page["next_cursor"] is None:
                if written and len(written) >= 20:
                    break
                cursor = str(seen[-1])  # caught up: keep following the tail
                continue
            cursor = page["next_cursor"]
    finally:
        stop.set()
        thread.join()
    assert seen == list(range(1, len(seen) + 1)), "a page skipped or repeated an event"
    assert len(seen) > 10 and written
