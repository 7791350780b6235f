"""Migration operations for a live database.

``AddIndexOnline`` builds an index without blocking writes on PostgreSQL (``CREATE INDEX
CONCURRENTLY``): the outbox and the ledger are written on every sign-up, and a plain
``CREATE INDEX`` on a large table holds those writes for the whole build. Elsewhere (SQLite) it
is a plain index. The migration that uses it must be ``atomic = False``.
"""

from __future__ import annotations

from typing import Any

from django.db import NotSupportedError
from django.db.migrations.operations import AddIndex


class AddIndexOnline(AddIndex):
    atomic = False

    def _concurrently(self, schema_editor: Any) -> bool:
        if schema_editor.connection.vendor != "postgresql":
            return False
        if schema_editor.connection.in_atomic_block:
            raise NotSupportedError(
                f"{self.index.name}: CREATE INDEX CONCURRENTLY cannot run in a transaction; "
                "set atomic = False on the migration."
            )
        return True

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            if self._concurrently(schema_editor):
                schema_editor.add_index(model, self.index, concurrently=True)
            else:
                schema_editor.add_index(model, self.index)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            if self._concurrently(schema_editor):
                schema_editor.remove_index(model, self.index, concurrently=True)
            else:
                schema_editor.remove_index(model, self.index)

    def describe(self) -> str:
        return f"Create index {self.index.name} on {self.model_name} (concurrently on PostgreSQL)"
