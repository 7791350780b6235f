"""The roles of the issue, as groups: "Compliance officer", "Store manager", "Staff".

Only consents permissions are given here; the store side adds its own to "Staff" and "Store
manager" in its migrations (groups are found by name, whoever creates them first).
"""

from django.db import migrations

VIEW_ALL = [
    "view_topic",
    "view_notice",
    "view_category",
    "view_store",
    "view_contact",
    "view_event",
    "view_evidence",
    "view_contactfacts",
    "view_channelstate",
    "view_consentstate",
    "view_catalogfact",
    "view_outbox",
    "view_accesslog",
    "view_erasure",
    "view_suppression",
]
GROUPS = {
    # Reads everything, exports, runs retention and data-subject requests, manages topics and
    # notices; never edits ledger rows (no permission on them would allow it anyway).
    "Compliance officer": [
        *VIEW_ALL,
        "add_topic",
        "change_topic",
        "add_notice",
        "change_notice",
        "export_contact",
        "erase_contact",
        "rectify_contact",
        "run_retention",
        "view_dashboard",
    ],
    # Manages the staff and devices of their stores (device permissions: the store side).
    "Store manager": ["view_store"],
    # Capture only: nothing in consents (capture permissions: the store side).
    "Staff": [],
}


def add_groups(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are otherwise created after migrate (post_migrate): make them now.
    config = apps.get_app_config("consents")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    for name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        perms = Permission.objects.filter(
            content_type__app_label="consents", codename__in=codenames
        )
        missing = set(codenames) - set(perms.values_list("codename", flat=True))
        assert not missing, f"missing permissions: {missing}"
        group.permissions.add(*perms)


def remove_permissions(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    mine = Permission.objects.filter(content_type__app_label="consents")
    for group in Group.objects.filter(name__in=list(GROUPS)):
        group.permissions.remove(*mine)


class Migration(migrations.Migration):
    dependencies = [
        ("consents", "0006_compliance_records"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(add_groups, remove_permissions)]
