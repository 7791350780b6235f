"""On PostgreSQL the ledger refuses UPDATE and DELETE, whoever asks."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION consents_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the consent ledger is append-only: % on consents_event is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER consents_event_append_only
    BEFORE UPDATE OR DELETE ON consents_event
    FOR EACH ROW EXECUTE FUNCTION consents_event_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS consents_event_append_only ON consents_event;
DROP FUNCTION IF EXISTS consents_event_append_only();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, None)


class Migration(migrations.Migration):
    dependencies = [("consents", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
