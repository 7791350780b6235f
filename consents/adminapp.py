from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class AssentAdminConfig(AdminConfig):
    """``django.contrib.admin`` with Assent's site: a second factor for every login."""

    default_site = "consents.adminsite.AssentAdminSite"
