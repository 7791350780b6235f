"""Indexes that were there twice: the ledger's ``contact_id`` (its unique ``(contact_id, seq)``
serves every lookup by contact), the projections' ``contact_id`` (their unique keys and indexes
begin with it), the imported rows' and the webhook deliveries' (their own indexes cover them). An
index less is a write less per event, per projection row and per imported row.

Only the indexes go: the foreign keys stay as they are (no table is scanned again)."""

from django.db import migrations, models
from django.db.models.deletion import CASCADE, PROTECT

# (index, table, column): each column is the first of another index of its table.
DUPLICATES = [
    ("consents_event_contact_id_9b499732", "consents_event", "contact_id"),
    ("consents_importedrow_contact_id_fc3171e6", "consents_importedrow", "contact_id"),
    ("consents_importedrow_run_id_31ee08e9", "consents_importedrow", "run_id"),
    ("consents_consentstate_contact_id_aec2f778", "consents_consentstate", "contact_id"),
    ("consents_channelstate_contact_id_a667d098", "consents_channelstate", "contact_id"),
    ("consents_catalogfact_contact_id_1da66fd6", "consents_catalogfact", "contact_id"),
    ("consents_webhookdelivery_contact_id_b1645489", "consents_webhookdelivery", "contact_id"),
    ("consents_webhookdelivery_endpoint_id_c5e58295", "consents_webhookdelivery", "endpoint_id"),
]


def _field(to: str, related_name: str, on_delete: object, **extra: object) -> models.ForeignKey:
    return models.ForeignKey(
        db_index=False, on_delete=on_delete, related_name=related_name, to=to, **extra
    )


class Migration(migrations.Migration):
    dependencies = [
        ("consents", "0019_projection_fold"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    [f'DROP INDEX IF EXISTS "{name}"' for name, _, _ in DUPLICATES],
                    reverse_sql=[
                        f'CREATE INDEX "{name}" ON "{table}" ("{column}")'
                        for name, table, column in DUPLICATES
                    ],
                )
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="event",
                    name="contact",
                    field=_field("consents.contact", "events", PROTECT),
                ),
                migrations.AlterField(
                    model_name="importedrow",
                    name="contact",
                    field=_field("consents.contact", "+", PROTECT),
                ),
                migrations.AlterField(
                    model_name="importedrow",
                    name="run",
                    field=_field("consents.importrun", "imported_rows", PROTECT),
                ),
                migrations.AlterField(
                    model_name="consentstate",
                    name="contact",
                    field=_field("consents.contact", "consent_states", CASCADE),
                ),
                migrations.AlterField(
                    model_name="channelstate",
                    name="contact",
                    field=_field("consents.contact", "channel_states", CASCADE),
                ),
                migrations.AlterField(
                    model_name="catalogfact",
                    name="contact",
                    field=_field("consents.contact", "catalog_facts", CASCADE),
                ),
                migrations.AlterField(
                    model_name="webhookdelivery",
                    name="contact",
                    field=_field("consents.contact", "+", PROTECT, null=True, blank=True),
                ),
                migrations.AlterField(
                    model_name="webhookdelivery",
                    name="endpoint",
                    field=_field("consents.webhookendpoint", "deliveries", PROTECT),
                ),
            ],
        ),
    ]
