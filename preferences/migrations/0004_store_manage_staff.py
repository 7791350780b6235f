"""Store managers manage the staff accounts of their stores: a permission, given to the group."""

from django.db import migrations

CODENAME = "manage_staff"
NAME = "Can manage the staff accounts of their stores"


def add_permission(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    # Permissions are otherwise created after migrate (post_migrate): make it now.
    content_type, _ = ContentType.objects.get_or_create(
        app_label="preferences", model="storemembership"
    )
    permission, _ = Permission.objects.get_or_create(
        codename=CODENAME, content_type=content_type, defaults={"name": NAME}
    )
    group, _ = Group.objects.get_or_create(name="Store manager")
    group.permissions.add(permission)


def remove_permission(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    mine = Permission.objects.filter(content_type__app_label="preferences", codename=CODENAME)
    for group in Group.objects.filter(name="Store manager"):
        group.permissions.remove(*mine)


class Migration(migrations.Migration):
    dependencies = [
        ("preferences", "0003_store_groups"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="storemembership",
            options={"permissions": [(CODENAME, NAME)]},
        ),
        migrations.RunPython(add_permission, remove_permission),
    ]
