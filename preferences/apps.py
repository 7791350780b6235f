from __future__ import annotations

from django.apps import AppConfig


class PreferencesConfig(AppConfig):
    name = "preferences"
    verbose_name = "Preferences"

    def ready(self) -> None:
        from anymail.signals import tracking

        from preferences import checks  # noqa: F401  (registers the deploy checks)
        from preferences.webhooks import tracking_received

        tracking.connect(tracking_received, dispatch_uid="preferences.webhooks.tracking")
