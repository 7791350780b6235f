from __future__ import annotations

from django.apps import AppConfig


class ConsentsConfig(AppConfig):
    name = "consents"
    verbose_name = "Consents"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from consents import checks, roles  # noqa: F401  (checks registers the deploy checks)

        post_migrate.connect(roles.ensure_roles, dispatch_uid="consents.roles.ensure_roles")
