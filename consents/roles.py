"""The product's roles as groups: "Compliance officer", "Store manager", "Staff".

Migrations ``consents.0007`` and ``preferences.0003``/``0004`` created them; this keeps them whole
after every ``migrate`` (and every database flush, which empties ``auth_group``): a role that
was deleted comes back, a permission it lacks is given again. Permissions an operator added
are left alone.
"""

from __future__ import annotations

from typing import Any

VIEW_ALL = [
    "consents.view_topic",
    "consents.view_notice",
    "consents.view_category",
    "consents.view_store",
    "consents.view_contact",
    "consents.view_event",
    "consents.view_evidence",
    "consents.view_contactfacts",
    "consents.view_channelstate",
    "consents.view_consentstate",
    "consents.view_catalogfact",
    "consents.view_outbox",
    "consents.view_accesslog",
    "consents.view_erasure",
    "consents.view_suppression",
    "consents.view_reconfirmcampaign",
    "consents.view_reconfirmrequest",
    "consents.view_chainhead",
    "consents.view_ledgeranchor",
    "consents.view_enrolmentlink",
    "consents.view_webhookendpoint",
    "consents.view_webhookdelivery",
    "consents.view_importrun",
    "consents.view_importedrow",
]
ROLES: dict[str, list[str]] = {
    # Reads everything, exports, runs retention and data-subject requests, manages topics and
    # notices; never edits ledger rows (no permission would allow it).
    "Compliance officer": [
        *VIEW_ALL,
        "consents.add_topic",
        "consents.change_topic",
        "consents.add_notice",
        "consents.change_notice",
        "consents.export_contact",
        "consents.erase_contact",
        "consents.rectify_contact",
        "consents.run_retention",
        "consents.view_dashboard",
        "consents.add_webhookendpoint",
        "consents.change_webhookendpoint",
        "consents.add_importrun",
    ],
    # Captures, and manages the staff and tablets of their own stores.
    "Store manager": [
        "consents.view_store",
        "preferences.capture_consent",
        "preferences.manage_devices",
        "preferences.manage_staff",
    ],
    # Capture only.
    "Staff": ["preferences.capture_consent"],
}


def ensure_roles(sender: Any, *, using: str = "default", **kwargs: Any) -> None:
    """``post_migrate`` receiver: once the last of our apps is migrated, every role is whole."""
    if getattr(sender, "name", "") != "preferences":
        return
    from django.contrib.auth.models import Group, Permission

    for name, permissions in ROLES.items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        wanted = set()
        for dotted in permissions:
            app_label, codename = dotted.split(".")
            wanted |= set(
                Permission.objects.using(using)
                .filter(content_type__app_label=app_label, codename=codename)
                .values_list("pk", flat=True)
            )
        group.permissions.add(*wanted)
