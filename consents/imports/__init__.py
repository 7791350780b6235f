"""History in: contacts and their consent history from another tool's export.

A row becomes the events it tells, each dated at its original instant (``occurred_at`` from the
file; recorded now), method ``import``, with as proof the file's SHA-256, the row number and the
source's own evidence (the IP addresses and instants it kept, beside the event like any evidence).
A row whose source kept no evidence of the opt-in is imported as what it is: an opt-in without
proof, which RULES.md does not count as consent; the report lists it for a repermission campaign.

- Unsubscribed rows become opt-outs, cleaned (undeliverable) rows hard bounces, after the opt-in
  they had given.
- An address on the suppression list never comes back as consenting: its opt-in is not recorded
  (the ledger records the suppression opt-out itself, as for any contact with that address).
- A contact already here keeps its history: the imported facts join it at their own instants,
  so an opt-out on file newer than the imported opt-in still wins (the rules read instants).
- Re-importing a row records nothing (each row is remembered by a keyed hash of the source's id
  for it, or of its address, and of its content); a row that changed since is a conflict,
  reported and not recorded.
- No email is sent, and no webhook unless asked for (``webhooks=True``).


Reading the file is ``reading``; what a row says, by preset, ``presets``; planning and writing
(new contacts through ``consents.bulk`` on PostgreSQL, the others through ``consents.services``)
``importer``; the report and the status resource ``reports``; the upload kept, queued and run in a
worker ``jobs``. Callers (the ``import_contacts`` command, the admin, the API, the task) use the
names below.
"""

from consents.imports.importer import BATCH_ROWS, Outcome, RowPlan, Summary, run
from consents.imports.jobs import import_execute, import_queue, import_store
from consents.imports.presets import PRESETS
from consents.imports.reading import ImportError_
from consents.imports.reports import import_as_dict, unproven_contacts, write_report
from consents.imports.shares import AUTO_LINES

__all__ = [
    "AUTO_LINES",
    "BATCH_ROWS",
    "PRESETS",
    "ImportError_",
    "Outcome",
    "RowPlan",
    "Summary",
    "import_as_dict",
    "import_execute",
    "import_queue",
    "import_store",
    "run",
    "unproven_contacts",
    "write_report",
]
