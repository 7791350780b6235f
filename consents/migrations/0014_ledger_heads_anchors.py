"""Chain heads, ledger anchors, keyed evidence digests, and a ledger that refuses TRUNCATE.

- ``ChainHead``: the last event of every chain, filled here from the ledger as it stands; on
  PostgreSQL a head only moves forward, to an event of its chain, and is never deleted.
- ``LedgerAnchor``: signed digests of the heads; append-only on PostgreSQL, like the ledger.
- ``Evidence.salt``: the key of a new event's evidence digest (empty for earlier events).
- On PostgreSQL, TRUNCATE of the ledger, the heads or the anchors is refused, as UPDATE and
  DELETE of the ledger already are (a TRUNCATE fires no row trigger).
"""

import django.db.models.deletion
from django.db import migrations, models

HEADS = """
INSERT INTO consents_chainhead (contact_id, seq, hash, recorded_at)
SELECT e.contact_id, e.seq, e.hash, e.recorded_at
FROM consents_event e
JOIN (SELECT contact_id, MAX(seq) AS seq FROM consents_event GROUP BY contact_id) last
    ON last.contact_id = e.contact_id AND last.seq = e.seq
"""

FORWARD = """
CREATE TRIGGER consents_event_no_truncate
    BEFORE TRUNCATE ON consents_event
    FOR EACH STATEMENT EXECUTE FUNCTION consents_event_append_only();

CREATE OR REPLACE FUNCTION consents_chainhead_forward() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.contact_id = OLD.contact_id AND NEW.seq > OLD.seq AND EXISTS (
            SELECT 1 FROM consents_event e
            WHERE e.contact_id = NEW.contact_id AND e.seq = NEW.seq
                AND e.hash = NEW.hash AND e.recorded_at = NEW.recorded_at
        ) THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'a chain head only moves forward, to an event of its chain'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RAISE EXCEPTION 'the chain heads are append-only: % on consents_chainhead is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER consents_chainhead_forward
    BEFORE UPDATE OR DELETE ON consents_chainhead
    FOR EACH ROW EXECUTE FUNCTION consents_chainhead_forward();
CREATE TRIGGER consents_chainhead_no_truncate
    BEFORE TRUNCATE ON consents_chainhead
    FOR EACH STATEMENT EXECUTE FUNCTION consents_chainhead_forward();

CREATE OR REPLACE FUNCTION consents_ledgeranchor_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger anchors are append-only: % on consents_ledgeranchor is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER consents_ledgeranchor_append_only
    BEFORE UPDATE OR DELETE ON consents_ledgeranchor
    FOR EACH ROW EXECUTE FUNCTION consents_ledgeranchor_append_only();
CREATE TRIGGER consents_ledgeranchor_no_truncate
    BEFORE TRUNCATE ON consents_ledgeranchor
    FOR EACH STATEMENT EXECUTE FUNCTION consents_ledgeranchor_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS consents_event_no_truncate ON consents_event;
DROP TRIGGER IF EXISTS consents_chainhead_forward ON consents_chainhead;
DROP TRIGGER IF EXISTS consents_chainhead_no_truncate ON consents_chainhead;
DROP FUNCTION IF EXISTS consents_chainhead_forward();
DROP TRIGGER IF EXISTS consents_ledgeranchor_append_only ON consents_ledgeranchor;
DROP TRIGGER IF EXISTS consents_ledgeranchor_no_truncate ON consents_ledgeranchor;
DROP FUNCTION IF EXISTS consents_ledgeranchor_append_only();
"""


def forward(apps, schema_editor):
    schema_editor.execute(HEADS, None)
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, None)


class Migration(migrations.Migration):

    dependencies = [
        ('consents', '0013_erasure_suppression_cancelled_renewals'),
    ]

    operations = [
        migrations.CreateModel(
            name='ChainHead',
            fields=[
                ('contact', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, primary_key=True, related_name='chain_head', serialize=False, to='consents.contact')),
                ('seq', models.PositiveIntegerField()),
                ('hash', models.CharField(max_length=64)),
                ('recorded_at', models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name='LedgerAnchor',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('at', models.DateTimeField(help_text="The heads covered: each chain's last event recorded by then.", unique=True)),
                ('created_at', models.DateTimeField()),
                ('chains', models.PositiveIntegerField()),
                ('events', models.PositiveBigIntegerField()),
                ('bucket_size', models.PositiveIntegerField(help_text='Contact ids per bucket.')),
                ('buckets', models.JSONField(default=list, help_text='[first contact id, chains, events, root] per non-empty bucket.')),
                ('root', models.CharField(max_length=64)),
                ('previous', models.CharField(help_text='Digest of the previous anchor; 64 zeros for the first.', max_length=64)),
                ('key_id', models.CharField(help_text='Names the signing key, never reveals it.', max_length=16)),
                ('signature', models.CharField(max_length=64)),
            ],
            options={
                'ordering': ['-at'],
                'get_latest_by': 'at',
            },
        ),
        migrations.AddField(
            model_name='evidence',
            name='salt',
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.RunPython(forward, backward),
    ]
