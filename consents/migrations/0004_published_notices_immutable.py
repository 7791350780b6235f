"""On PostgreSQL a published notice's wording cannot change, and no notice can be deleted once
published: ledger events point at it as the proof of what a person was shown."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION consents_notice_immutable() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.published_at IS NOT NULL THEN
            RAISE EXCEPTION 'a published notice cannot be deleted'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.published_at IS NOT NULL AND (
        NEW.text IS DISTINCT FROM OLD.text OR NEW.sha256 IS DISTINCT FROM OLD.sha256
        OR NEW.version IS DISTINCT FROM OLD.version OR NEW.language IS DISTINCT FROM OLD.language
        OR NEW.topic_id IS DISTINCT FROM OLD.topic_id
        OR NEW.published_at IS DISTINCT FROM OLD.published_at
    ) THEN
        RAISE EXCEPTION 'a published notice is immutable: publish a new version'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER consents_notice_immutable
    BEFORE UPDATE OR DELETE ON consents_notice
    FOR EACH ROW EXECUTE FUNCTION consents_notice_immutable();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS consents_notice_immutable ON consents_notice;
DROP FUNCTION IF EXISTS consents_notice_immutable();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, None)


class Migration(migrations.Migration):
    dependencies = [("consents", "0003_contactfacts_retention_anchor_outbox")]
    operations = [migrations.RunPython(forward, backward)]
