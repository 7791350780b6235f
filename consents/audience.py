"""The audience of one message: the contactability decision for every contact at once.

One SQL query over the projections, built for the message (the branches of RULES.md that cannot
apply to it are left out), streamed through a server-side cursor on PostgreSQL. It must agree with
``rules.decide`` on every contact; the case-book runner checks that it does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from consents import rules
from consents.models import Category, Topic
from consents.vocab import Channel, ContactKind, Purpose, Reason

ADDRESS_COLUMN = {
    Channel.EMAIL: "c.email",
    Channel.SMS: "c.phone",
    Channel.PHONE: "c.phone",
    Channel.POSTAL: "c.postal_address",
    Channel.PUSH: "c.push_token",
}


@dataclass(frozen=True)
class AudienceRow:
    contact_id: int
    public_id: str
    address: str
    reason: str


def retired_topics() -> frozenset[str]:
    """The topics ``rules.decide`` must treat as retired (inactive in the catalogue)."""
    return frozenset(Topic.objects.filter(active=False).values_list("slug", flat=True))


def family_for(category: str | None) -> str | None:
    if not category:
        return None
    family = Category.objects.filter(slug=category).values_list("family", flat=True).first()
    return family or category


class _Sql:
    """Collects SQL fragments and their parameters in order."""

    def __init__(self) -> None:
        self.params: list[object] = []

    def p(self, value: object) -> str:
        if isinstance(value, datetime):
            # Stored instants are compared in the database's own spelling of UTC (on SQLite a
            # naive UTC text); an aware parameter would compare as text with an offset.
            value = connection.ops.adapt_datetimefield_value(value)
        self.params.append(value)
        return "%s"


def _reason_cases(
    message: rules.Message, now: datetime, s: rules.RuleSettings, q: _Sql
) -> list[str]:
    """The WHEN branches of the decision for this message, in the order of RULES.md."""
    channel, purpose = message.channel, message.purpose
    informed = "c.informed_at_collection"
    consumer = f"c.kind = '{ContactKind.CONSUMER}'"
    professional = f"c.kind = '{ContactKind.PROFESSIONAL}'"

    # 4. Repermission.
    if purpose == Purpose.REPERMISSION:
        if channel == Channel.PHONE:
            return []
        basis = ["COALESCE(cs.has_valid_consent, FALSE)"]
        if channel in (Channel.EMAIL, Channel.SMS):
            basis.append(f"({consumer} AND f.is_customer AND {informed})")
        if channel == Channel.POSTAL:
            basis.append(informed)
        basis.append(f"({professional} AND {informed})")
        return [
            "WHEN COALESCE(cs.repermission_opted_out, FALSE) THEN NULL",
            f"WHEN NOT ({' OR '.join(basis)}) THEN NULL",
            f"WHEN f.expires_at IS NOT NULL AND f.expires_at <= {q.p(now + s.repermission_window)}"
            f" AND NOT f.repermission_asked THEN '{Reason.REPERMISSION}'",
        ]

    # 5. Service.
    if purpose == Purpose.SERVICE:
        if not message.contains_promotion:
            return [f"WHEN 1 = 1 THEN '{Reason.SERVICE}'"]
        purpose = Purpose.PROMOTION

    automated_call = channel == Channel.PHONE and message.automated
    # The topic's own state, or else what applies to every topic on the channel.
    opted_out = (
        "CASE WHEN s.id IS NOT NULL THEN s.status = 'opted_out'"
        " ELSE COALESCE(cs.opted_out, FALSE) END"
    )
    cases = []
    if channel == Channel.PHONE and purpose == Purpose.PROMOTION and not automated_call:
        # 6. Opted out, but for the call the person asked for since (then 7 still applies).
        lifts = (
            "CASE WHEN s.id IS NOT NULL THEN s.callback_lifts"
            " ELSE COALESCE(cs.callback_lifts, FALSE) END"
        )
        cases += [
            f"WHEN {opted_out} AND NOT ({lifts} AND f.callback_until >= {q.p(now)}) THEN NULL",
            f"WHEN cs.pause_until > {q.p(now)} THEN NULL",
            f"WHEN {opted_out} THEN '{Reason.CALLBACK_REQUESTED}'",
        ]
    else:
        cases += [
            f"WHEN {opted_out} THEN NULL",
            # 7. Paused.
            f"WHEN cs.pause_until > {q.p(now)} THEN NULL",
        ]
    # 8. Valid consent (to automated calls, for an automated call).
    automated = " AND s.automated" if automated_call else ""
    cases.append(f"WHEN s.status = 'opted_in'{automated} THEN '{Reason.OPT_IN}'")
    # 9. The paths that need no consent.
    family = family_for(message.category)

    def bought(kind_filter: str) -> str:
        return (
            "EXISTS (SELECT 1 FROM consents_catalogfact cf"
            " LEFT JOIN consents_category cat ON cat.slug = cf.category"
            f" WHERE cf.contact_id = c.id AND cf.category <> '' AND {kind_filter}"
            f" COALESCE(cat.family, cf.category) = {q.p(family)})"
        )

    if channel == Channel.EMAIL:
        cases.append(f"WHEN {professional} AND f.generic_email THEN '{Reason.GENERIC_ADDRESS}'")
    if channel == Channel.POSTAL:
        cases.append(f"WHEN {informed} THEN '{Reason.LEGITIMATE_INTEREST}'")
    if message.professions and not automated_call:
        listed = ", ".join(q.p(p) for p in message.professions)
        cases.append(
            f"WHEN {professional} AND {informed} AND c.profession <> ''"
            f" AND c.profession IN ({listed}) THEN '{Reason.B2B_PROFESSIONAL}'"
        )
    if channel == Channel.PHONE and purpose == Purpose.PROMOTION and not automated_call:
        if family is not None:
            contract = bought("cf.kind = 'contract' AND cf.active AND")
            cases.append(f"WHEN {consumer} AND {contract} THEN '{Reason.CONTRACT_IN_PROGRESS}'")
        cases.append(f"WHEN f.callback_until >= {q.p(now)} THEN '{Reason.CALLBACK_REQUESTED}'")
    if channel in (Channel.EMAIL, Channel.SMS):
        if purpose == Purpose.PROMOTION and family is not None:
            cases.append(
                f"WHEN {consumer} AND f.is_customer AND {informed} AND {bought('')}"
                f" THEN '{Reason.SOFT_OPT_IN}'"
            )
        if purpose == Purpose.CART_ABANDONMENT and message.product:
            cases.append(
                f"WHEN {consumer} AND {informed} AND EXISTS (SELECT 1 FROM consents_catalogfact cf"
                " WHERE cf.contact_id = c.id AND cf.kind = 'purchase'"
                f" AND cf.product = {q.p(message.product)}) THEN '{Reason.ALREADY_BOUGHT_PRODUCT}'"
            )
    return cases


def audience_sql(
    message: rules.Message,
    now: datetime,
    *,
    settings: rules.RuleSettings | None = None,
    contact_ids: Sequence[int] | None = None,
) -> tuple[str, list[object]]:
    s = settings or rules.RuleSettings.from_django()
    address = ADDRESS_COLUMN[message.channel]
    # Parameters are bound in the order they appear in the text: CASE, then JOIN, then WHERE.
    case_q, where_q = _Sql(), _Sql()
    cases = _reason_cases(message, now, s, case_q)
    reason = f"CASE {' '.join(cases)} END" if cases else "NULL"
    where = [
        # 1. An address for the channel.
        f"{address} IS NOT NULL AND {address} <> ''",
        # 2. Retention.
        f"(f.expires_at IS NULL OR f.expires_at > {where_q.p(now)})",
    ]
    if message.channel == Channel.EMAIL:
        # 3. Undeliverable email.
        where.append("NOT f.undeliverable_email")
    if message.topic:
        # A retired topic is sent to nobody (rules.decide says TOPIC_RETIRED).
        where.append(
            "NOT EXISTS (SELECT 1 FROM consents_topic t"
            f" WHERE t.slug = {where_q.p(message.topic)} AND NOT t.active)"
        )
    if contact_ids is not None:
        where.append(f"c.id IN ({', '.join(where_q.p(i) for i in contact_ids) or 'NULL'})")
    join_params = [message.channel, message.topic or "", message.channel]
    sql = (
        "SELECT id, public_id, address, reason FROM ("
        f"SELECT c.id AS id, c.public_id AS public_id, {address} AS address, {reason} AS reason"
        " FROM consents_contact c"
        " JOIN consents_contactfacts f ON f.contact_id = c.id"
        " LEFT JOIN consents_channelstate cs ON cs.contact_id = c.id AND cs.channel = %s"
        " LEFT JOIN consents_consentstate s"
        " ON s.contact_id = c.id AND s.topic = %s AND s.channel = %s"
        f" WHERE {' AND '.join(where)}"
        ") audience WHERE reason IS NOT NULL ORDER BY id"
    )
    return sql, [*case_q.params, *join_params, *where_q.params]


def audience(
    message: rules.Message,
    now: datetime,
    *,
    settings: rules.RuleSettings | None = None,
    contact_ids: Sequence[int] | None = None,
    chunk_size: int = 5000,
) -> Iterator[AudienceRow]:
    """Every contact the message may be sent to as of ``now``, with the reason, by contact id."""
    sql, params = audience_sql(message, now, settings=settings, contact_ids=contact_ids)
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_size):
            for row in rows:
                yield AudienceRow(*row)


# --- Exports: the ``audience`` command and the API stream the same rows the same way ----------

EXPORT_COLUMNS = ("id", "address", "reason")


def changed_since_sql(
    message: rules.Message,
    now: datetime,
    since: datetime,
    *,
    settings: rules.RuleSettings | None = None,
) -> tuple[str, list[object]]:
    """For an incremental sync: every contact whose ledger changed (or who was erased) after
    ``since``, with the audience's address and reason when they are in it, NULL when not."""
    sql, params = audience_sql(message, now, settings=settings)
    q = _Sql()
    changed = (
        "SELECT h.contact_id FROM consents_chainhead h WHERE h.recorded_at > "
        f"{q.p(since)} UNION SELECT e.contact_id FROM consents_erasure e WHERE e.erased_at > "
        f"{q.p(since)}"
    )
    text = (
        "SELECT c.id, c.public_id, a.address, a.reason FROM consents_contact c"
        f" LEFT JOIN ({sql}) a ON a.id = c.id WHERE c.id IN ({changed}) ORDER BY c.id"
    )
    return text, [*params, *q.params]


def changed_since(
    message: rules.Message, now: datetime, since: datetime, *, chunk_size: int = 5000
) -> Iterator[AudienceRow]:
    sql, params = changed_since_sql(message, now, since)
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_size):
            for row in rows:
                yield AudienceRow(row[0], row[1], row[2] or "", row[3] or "")
