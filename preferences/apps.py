from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PreferencesConfig(AppConfig):
    name = "preferences"
    verbose_name = _("Preferences")

    def ready(self) -> None:
        from consents.i18n import translate_names

        translate_names(self)  # model and field names in the officer's language
        from anymail.signals import tracking

        from preferences import checks  # noqa: F401  (registers the deploy checks)
        from preferences.webhooks import tracking_received

        tracking.connect(tracking_received, dispatch_uid="preferences.webhooks.tracking")

        from django.db.models.signals import post_delete, post_save

        from consents.models import Contact
        from consents.signals import contact_erased
        from preferences import erasure, pagecache

        contact_erased.connect(erasure.contact_erased, dispatch_uid="preferences.erasure")

        for name, signal in (("save", post_save), ("delete", post_delete)):
            signal.connect(
                pagecache.contact_changed, sender=Contact, dispatch_uid=f"pagecache.contact.{name}"
            )
            # Topics and notices: ``consents.catalogue`` replaces the catalogue's version,
            # which the page's fingerprint holds.
