"""The one hook other apps have on the system of record.

``consents`` never calls the apps built on it; what they keep about a person (sign-ups waiting
for a click, open preference-center sessions, rendered pages, mail files) they wipe themselves
when told that the person was erased.
"""

from __future__ import annotations

from django.dispatch import Signal

# Sent inside ``services.contact_erase``'s transaction, after the contact's own fields are wiped:
# ``contact`` (the erased row) and ``addresses`` (every email address and number it had, the
# outbox's included, for what is keyed by address). A receiver that fails rolls the erasure back;
# one that touches something outside the database does it on commit.
contact_erased = Signal()
