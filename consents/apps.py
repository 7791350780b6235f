from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsentsConfig(AppConfig):
    name = "consents"
    verbose_name = _("Consents")

    def ready(self) -> None:
        from consents.i18n import translate_names

        translate_names(self)  # model and field names in the officer's language
        from django.db.models.signals import post_delete, post_migrate, post_save

        from consents import (  # noqa: F401  (checks: deploy checks; lookups: ``__any_of``)
            catalogue,
            checks,
            lookups,
            projections,
            roles,
        )
        from consents.models import Notice, Topic, WebhookEndpoint

        for model in (Topic, Notice, WebhookEndpoint):
            for signal in (post_save, post_delete):
                signal.connect(
                    catalogue.row_changed,
                    sender=model,
                    dispatch_uid=f"consents.catalogue.{model.__name__}.{signal is post_save}",
                )
        from django.db.backends.signals import connection_created

        from consents import instants

        connection_created.connect(instants.install, dispatch_uid="consents.instants.install")
        post_migrate.connect(roles.ensure_roles, dispatch_uid="consents.roles.ensure_roles")
        post_migrate.connect(
            projections.rebuild_stale_after_migrate,
            sender=self,
            dispatch_uid="consents.projections.rebuild_stale_after_migrate",
        )
