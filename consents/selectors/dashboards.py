"""The compliance dashboards: counts over the ledger, computed by the database.

Every figure is one aggregate query (GROUP BY week, channel, topic, store, method) over the events
of the window, served by the ``(type, occurred_at)`` index; Python only lays the few resulting rows
out as tables (``consents.charts`` names and draws them). No row of the ledger is loaded one by
one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import (
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    Subquery,
)
from django.db.models.functions import TruncWeek
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _

from consents import labels
from consents.charts import SPECIAL_NAMES, Chart
from consents.charts import label as label  # the page's name of a measure, read by the tests
from consents.models import Event, Outbox, Store, Topic
from consents.vocab import EventType, Method

OUTS = (EventType.OPT_OUT, EventType.COMPLAINT)

# PERCENTILE_DISC: the middle delay (one of the values, not a mean). The WHERE clause repeats the
# partial index's condition word for word, so that the planner uses it.
DOI_SQL = """
SELECT COUNT(*), COUNT(*) FILTER (WHERE delay <= %s),
       PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY delay) FILTER (WHERE delay <= %s)
FROM (
    SELECT MIN(c.occurred_at) - e.occurred_at AS delay
    FROM consents_event e
    LEFT JOIN consents_event c
      ON c.type = 'doi_confirmed' AND c.contact_id = e.contact_id AND c.topic = e.topic
     AND c.channel = e.channel AND c.seq > e.seq
    WHERE (e.data -> 'doi') = '"pending"'::jsonb AND e.type = 'opt_in'
      AND e.occurred_at >= %s AND e.occurred_at < %s
    GROUP BY e.contact_id, e.seq, e.occurred_at
) pending
"""


def _weeks(start: datetime, end: datetime) -> list[datetime]:
    first = (start - timedelta(days=start.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    weeks = []
    while first < end:
        weeks.append(first)
        first += timedelta(days=7)
    return weeks


def _week_key(value: datetime | Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value)[:10]


def window_events(start: datetime, end: datetime, *types: str) -> Any:
    """The window's events of these types that people did: a ``suppression`` opt-out is the
    system recording an earlier objection on a re-created address, nobody leaving this week."""
    return Event.objects.filter(
        type__in=types, occurred_at__gte=start, occurred_at__lt=end
    ).exclude(method=Method.SUPPRESSION)


def window_renewals(start: datetime, end: datetime) -> Any:
    """The window's opt-ins that renew what the person already received (a new frequency, a
    re-confirmation under a new notice): not new subscribers. Few, from their partial index."""
    return Event.objects.filter(
        type=EventType.OPT_IN, data__renewal=True, occurred_at__gte=start, occurred_at__lt=end
    )


DIMENSIONS = ("channel", "topic", "store")


def _topic_name(topic: Topic) -> str:
    return topic.name


# A topic's name in the language active when the page is drawn (Topic.name follows it).
topic_name = lazy(_topic_name, str)


def dimension_names(
    grouped: list[tuple[str, str, dict[str, str], int]],
) -> dict[str, dict[str, Any]]:
    """What the page shows for the channels, topics and stores seen: one query, for the topics."""
    slugs = {dims["topic"] for _week, _type, dims, _n in grouped if dims["topic"]}
    topics = Topic.objects.filter(slug__in=slugs) if slugs else []
    return {
        "channel": dict(labels.DASHBOARD_CHANNELS),
        "topic": {topic.slug: topic_name(topic) for topic in topics},
        "store": {
            dims["store"]: dims["store_name"]
            for _week, _type, dims, _n in grouped
            if dims["store"] and dims.get("store_name")
        },
    }


def weekly_grouped(start: datetime, end: datetime) -> list[tuple[str, str, dict[str, str], int]]:
    """One scan of the window: counts per week, type, channel, topic and store.

    A few thousand grouped rows at most (weeks x 3 types x channels x topics x stores), from
    which every weekly chart is summed; the ledger itself is read once, by the database.
    """
    rows = (
        window_events(start, end, EventType.OPT_IN, *OUTS)
        .annotate(week=TruncWeek("occurred_at", tzinfo=UTC))
        .values_list("week", "type", "channel", "topic", "store_id")
        .annotate(n=Count("*"))
        .order_by()
    )
    # Renewals are counted apart and taken off the opt-ins: the scan above stays index-only.
    renewals = {
        (week, channel, topic, store): n
        for week, channel, topic, store, n in window_renewals(start, end)
        .annotate(week=TruncWeek("occurred_at", tzinfo=UTC))
        .values_list("week", "channel", "topic", "store_id")
        .annotate(n=Count("*"))
        .order_by()
    }
    rows = [
        (week, type_, channel, topic, store, n - renewals.get((week, channel, topic, store), 0))
        if type_ == EventType.OPT_IN
        else (week, type_, channel, topic, store, n)
        for week, type_, channel, topic, store, n in rows
    ]
    # Store codes (the data) and names (the page) for the few ids seen: a join would make the
    # scan leave the index.
    seen = Store.objects.filter(pk__in={r[4] for r in rows if r[4]})
    stores = {pk: (code, name) for pk, code, name in seen.values_list("pk", "code", "name")}
    grouped = []
    for week, type_, channel, topic, store, n in rows:
        code, name = stores.get(store, (None, None))
        dims = {"channel": channel, "topic": topic, "store": code, "store_name": name}
        grouped.append((_week_key(week), type_, dims, n))
    return grouped


def weekly_by(
    grouped: list[tuple[str, str, dict[str, str], int]],
    start: datetime,
    end: datetime,
    dimension: str,
    title: str,
    shown: dict[str, Any] | None = None,
) -> Chart:
    """Opt-ins, opt-outs (complaints included) and net, per week and per value of ``dimension``.

    ``shown``: what the page shows for the values (their names); the data keeps the codes.
    """
    key = dimension
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    values: set[str] = set()
    for week, type_, dims, n in grouped:
        value = dims[dimension]
        value = value if value not in (None, "") else "-"
        values.add(value)
        counts[(week, value)][0 if type_ == EventType.OPT_IN else 1] += n
    # The wildcard and the empty value by their meaning, never as "*" or "-".
    shown = {**SPECIAL_NAMES.get(dimension, {}), **(shown or {})}
    chart = Chart(key, title, ["week", *[f"{v} net" for v in sorted(values)]], names=shown)
    detail = Chart(
        key, title, ["week", dimension, "opt-ins", "opt-outs", "net"], named=dimension, names=shown
    )
    for week in _weeks(start, end):
        wk = week.date().isoformat()
        line = [wk]
        for value in sorted(values):
            ins, outs = counts.get((wk, value), [0, 0])
            line.append(ins - outs)
            if ins or outs:
                detail.rows.append([wk, value, ins, outs, ins - outs])
        chart.rows.append(line)
    chart.table = detail  # type: ignore[attr-defined]
    return chart


def weekly_totals(
    grouped: list[tuple[str, str, dict[str, str], int]], start: datetime, end: datetime
) -> Chart:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for week, type_, _dims, n in grouped:
        counts[week][0 if type_ == EventType.OPT_IN else 1] += n
    chart = Chart(
        "weekly", _("Opt-ins, opt-outs and net per week"), ["week", "opt-ins", "opt-outs", "net"]
    )
    for week in _weeks(start, end):
        ins, outs = counts.get(week.date().isoformat(), [0, 0])
        chart.rows.append([week.date().isoformat(), ins, outs, ins - outs])
    return chart


def doi(start: datetime, end: datetime, ttl: timedelta) -> Chart:
    """Double opt-in: sign-ups waiting for a click, how many clicked in time, and how fast."""
    confirmed_at = (
        Event.objects.filter(
            contact_id=OuterRef("contact_id"),
            type=EventType.DOI_CONFIRMED,
            topic=OuterRef("topic"),
            channel=OuterRef("channel"),
            seq__gt=OuterRef("seq"),
        )
        .order_by("seq")
        .values("occurred_at")[:1]
    )
    pending = (
        window_events(start, end, EventType.OPT_IN)
        .filter(data__doi="pending")
        .annotate(confirmed_at=Subquery(confirmed_at))
        .annotate(
            delay=ExpressionWrapper(
                F("confirmed_at") - F("occurred_at"), output_field=DurationField()
            )
        )
    )
    in_time = Q(delay__lte=ttl)
    if connection.vendor == "postgresql":
        # One pass, each confirmation looked up once, and PostgreSQL computes the median; both
        # lookups are index-only (the partial indexes event_doi_pending and event_doi_confirmed).
        with connection.cursor() as cursor:
            cursor.execute(DOI_SQL, [ttl, ttl, start, end])
            asked, confirmed, median = cursor.fetchone()
        stats = {"asked": asked, "confirmed": confirmed, "median": median}
    else:
        stats = pending.aggregate(asked=Count("*"), confirmed=Count("seq", filter=in_time))
    median = stats.get("median")
    if median is None and stats["confirmed"] and connection.vendor != "postgresql":
        median = (
            pending.filter(delay__lte=ttl)
            .order_by("delay")
            .values_list("delay", flat=True)[stats["confirmed"] // 2]
        )
    rate = round(100 * stats["confirmed"] / stats["asked"], 1) if stats["asked"] else None
    chart = Chart("doi", _("Double opt-in completion"), ["measure", "value"], kind="bars")
    chart.rows = [
        ["sign-ups asked to confirm", stats["asked"]],
        [f"confirmed within {ttl.days} days", stats["confirmed"]],
    ]
    chart.summary = [  # type: ignore[attr-defined]
        ["completion rate (%)", rate if rate is not None else "-"],
        ["median time to confirm", _duration(median) if median is not None else "-"],
    ]
    return chart


def _duration(value: timedelta | float) -> str:
    if not isinstance(value, timedelta):  # some backends hand microseconds back
        value = timedelta(microseconds=value)
    minutes = int(value.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m"


def unsubscribe_methods(start: datetime, end: datetime) -> Chart:
    rows = (
        window_events(start, end, *OUTS)
        .values_list("type", "method")
        .annotate(n=Count("*"))
        .order_by()
    )
    split: dict[str, int] = defaultdict(int)
    for type_, method, n in rows:
        split["complaint" if type_ == EventType.COMPLAINT else (method or "-")] += n
    chart = Chart(
        "unsubscribe",
        _("How people leave"),
        ["method", "count"],
        kind="bars",
        named="method",
        names=dict(labels.DASHBOARD_METHODS),
    )
    chart.rows = sorted(([k, v] for k, v in split.items()), key=lambda r: -r[1])
    return chart


def deliverability(start: datetime, end: datetime) -> Chart:
    # Every bounce and complaint from the covering index; the hard ones from their own partial
    # index: soft = all - hard. Neither reads the ledger's rows.
    rows = (
        window_events(start, end, EventType.BOUNCE, EventType.COMPLAINT)
        .filter(channel="email")
        .annotate(week=TruncWeek("occurred_at", tzinfo=UTC))
        .values_list("week", "type")
        .annotate(n=Count("*"))
        .order_by()
    )
    hard_rows = (
        Event.objects.filter(
            type=EventType.BOUNCE,
            data__hard=True,
            occurred_at__gte=start,
            occurred_at__lt=end,
            channel="email",
        )
        .annotate(week=TruncWeek("occurred_at", tzinfo=UTC))
        .values_list("week")
        .annotate(n=Count("*"))
        .order_by()
    )
    hard_by_week = {_week_key(week): n for week, n in hard_rows}
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for week, type_, n in rows:
        key = _week_key(week)
        if type_ == EventType.COMPLAINT:
            counts[key][2] += n
        else:
            counts[key][0] = hard_by_week.get(key, 0)
            counts[key][1] += n - hard_by_week.get(key, 0)
    sent = dict(
        Outbox.objects.filter(sent_at__gte=start, sent_at__lt=end)
        .annotate(week=TruncWeek("sent_at", tzinfo=UTC))
        .values_list("week")
        .annotate(n=Count("*"))
        .values_list("week", "n")
        .order_by()
    )
    sent = {_week_key(k): v for k, v in sent.items()}
    chart = Chart(
        "deliverability",
        _("Bounces and complaints (rates per 1,000 emails sent)"),
        [
            "week",
            "sent",
            "hard bounces",
            "soft bounces",
            "complaints",
            "bounce rate",
            "complaint rate",
        ],
    )
    for week in _weeks(start, end):
        wk = week.date().isoformat()
        hard, soft, complaints = counts.get(wk, [0, 0, 0])
        n = sent.get(wk, 0)
        chart.rows.append(
            [
                wk,
                n,
                hard,
                soft,
                complaints,
                round(1000 * (hard + soft) / n, 2) if n else "-",
                round(1000 * complaints / n, 2) if n else "-",
            ]
        )
    chart.plot_columns = [2, 3, 4]  # type: ignore[attr-defined]
    return chart


def charts(end: datetime, weeks: int, doi_ttl: timedelta) -> list[Chart]:
    start = end - timedelta(weeks=weeks)
    grouped = weekly_grouped(start, end)
    shown = dimension_names(grouped)
    return [
        weekly_totals(grouped, start, end),
        weekly_by(
            grouped,
            start,
            end,
            "channel",
            _("Net subscribers per week, per channel"),
            shown["channel"],
        ),
        weekly_by(
            grouped, start, end, "topic", _("Net subscribers per week, per topic"), shown["topic"]
        ),
        weekly_by(
            grouped, start, end, "store", _("Net subscribers per week, per store"), shown["store"]
        ),
        doi(start, end, doi_ttl),
        unsubscribe_methods(start, end),
        deliverability(start, end),
    ]


@dataclass
class ProofTile:
    """How many contacts' consent could be shown to an auditor: the first question they ask."""

    consenting: int  # contacts with a valid consent on some topic and channel
    proven: int  # of those, whose opt-in carries evidence (IP, device), a notice or a reference
    unproven: int  # contacts whose opt-ins are not consent for lack of proof (or other defects)

    @property
    def share(self) -> float | None:
        return round(100 * self.proven / self.consenting, 1) if self.consenting else None


def proof_tile() -> ProofTile:
    """Counted by the database over the projections, with one EXISTS per consent."""
    from django.db.models import Exists

    from consents.models import ConsentState

    evidenced = Event.objects.filter(
        contact_id=OuterRef("contact_id"),
        topic=OuterRef("topic"),
        channel=OuterRef("channel"),
        type__in=(EventType.OPT_IN, EventType.DOI_CONFIRMED),
    ).filter(~Q(evidence_digest="") | ~Q(proof="") | Q(notice__isnull=False))
    states = ConsentState.objects.annotate(evidenced=Exists(evidenced))
    counts = states.aggregate(
        consenting=Count("contact", distinct=True, filter=Q(status=ConsentState.Status.OPTED_IN)),
        proven=Count(
            "contact",
            distinct=True,
            filter=Q(status=ConsentState.Status.OPTED_IN, evidenced=True),
        ),
    )
    opted_in = ConsentState.objects.filter(
        contact_id=OuterRef("contact_id"), status=ConsentState.Status.OPTED_IN
    )
    unproven = (
        ConsentState.objects.filter(status=ConsentState.Status.INVALID)
        .exclude(Exists(opted_in))
        .values("contact")
        .distinct()
        .count()
    )
    return ProofTile(counts["consenting"], counts["proven"], unproven)
