"""The ``varchar_pattern_ops`` indexes Django adds on PostgreSQL beside the index of an indexed or
unique ``CharField``, for ``LIKE 'prefix%'`` lookups: the contact's public id, its phone number
and the facts' rules fingerprint are only ever looked up by equality (the admin searches the
public id with ``=`` and the phone number with ``icontains``, which no such index serves), which
their own indexes serve. Three writes less per new contact, one of them into an index of random
keys (the public id) that an import of a million contacts grows beyond the server's cache.

Django names these indexes after the field (the ``_like`` suffix) and drops them with
``IF EXISTS`` when the field changes, so a later migration of these fields goes through; one that
changes their type would create them again."""

from django.db import migrations

# (index, table, column) as Django created them (0001).
PATTERN_INDEXES = [
    ("consents_contact_public_id_8b23ce9e_like", "consents_contact", "public_id"),
    ("consents_contact_phone_28aefc97_like", "consents_contact", "phone"),
    (
        "consents_contactfacts_rules_fingerprint_5c595bbc_like",
        "consents_contactfacts",
        "rules_fingerprint",
    ),
]


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # only PostgreSQL has them
    for name, _, _ in PATTERN_INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, table, column in PATTERN_INDEXES:
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}" varchar_pattern_ops)'
        )


class Migration(migrations.Migration):
    dependencies = [
        ("consents", "0020_indexes_once"),
    ]

    operations = [migrations.RunPython(drop, create)]
