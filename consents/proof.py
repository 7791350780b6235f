"""Where callers that other helpers are moving in parallel (issue 16) still look: the admin's
contact pages, the two-factor log, the customer pages (center, logins, store, views).

Nothing lives here any more: the reads are ``consents.selectors.proof``, the access log is
``consents.services.access_log``, the file response is ``consents.http.json_file``. Remove this
module once those callers import them from there.
"""

from __future__ import annotations

from consents.http import json_file
from consents.selectors.proof import (
    StateRow,
    access_export,
    catalog,
    contact_json,
    decide_for,
    history,
    proof_export,
    receipts,
    state_grid,
)
from consents.services.access import access_log

__all__ = [
    "StateRow",
    "access_export",
    "access_log",
    "catalog",
    "contact_json",
    "decide_for",
    "history",
    "json_file",
    "proof_export",
    "receipts",
    "state_grid",
]
