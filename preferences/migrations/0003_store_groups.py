"""The groups of the store side: "Staff" capture consent; "Store manager" also enrols tablets.

Another app may create groups of the same names: get them by name and only add permissions.
"""

from django.db import migrations

PERMISSIONS = {
    "capture_consent": ("capture", "Can capture consent in a store or on the phone"),
    "manage_devices": ("device", "Can enrol and revoke the tablets of their stores"),
}
GROUPS = {
    "Staff": ["capture_consent"],
    "Store manager": ["capture_consent", "manage_devices"],
}


def add_groups(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    perms = {}
    for codename, (model, name) in PERMISSIONS.items():
        # Permissions are otherwise created after migrate (post_migrate): make them now.
        content_type, _ = ContentType.objects.get_or_create(app_label="preferences", model=model)
        perms[codename], _ = Permission.objects.get_or_create(
            codename=codename, content_type=content_type, defaults={"name": name}
        )
    for group_name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        group.permissions.add(*(perms[c] for c in codenames))


def remove_permissions(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    mine = Permission.objects.filter(
        content_type__app_label="preferences", codename__in=list(PERMISSIONS)
    )
    for group in Group.objects.filter(name__in=list(GROUPS)):
        group.permissions.remove(*mine)


class Migration(migrations.Migration):
    dependencies = [
        ("preferences", "0002_store_capture"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(add_groups, remove_permissions)]
