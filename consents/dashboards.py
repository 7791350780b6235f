"""The compliance dashboards: counts over the ledger, computed by the database.

Every figure is one aggregate query (GROUP BY week, channel, topic, store, method) over the events
of the window, served by the ``(type, occurred_at)`` index; Python only lays the few resulting rows
out as tables and draws them as SVG. No row of the ledger is loaded one by one.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
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
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from consents.models import Event, Outbox, Store
from consents.vocab import EventType

OUTS = (EventType.OPT_OUT, EventType.COMPLAINT)

# The tables and their CSV files name columns and measures in English, as identifiers that a
# spreadsheet can rely on; the page shows them in the officer's language (WCAG 3.1.2: no English
# words on a French page).
LABELS = {
    "week": _("week"),
    "opt-ins": _("opt-ins"),
    "opt-outs": _("opt-outs"),
    "net": pgettext_lazy("subscribers", "net"),
    "channel": _("channel"),
    "topic": _("topic"),
    "store": pgettext_lazy("shop", "store"),
    "measure": _("measure"),
    "value": _("value"),
    "method": _("method"),
    "count": _("count"),
    "sent": _("emails sent"),
    "hard bounces": _("hard bounces"),
    "soft bounces": _("soft bounces"),
    "complaints": _("complaints"),
    "complaint": _("complaint"),
    "bounce rate": _("bounce rate"),
    "complaint rate": _("complaint rate"),
    "sign-ups asked to confirm": _("sign-ups asked to confirm"),
    "completion rate (%)": _("completion rate (%)"),
    "median time to confirm": _("median time to confirm"),
}
CONFIRMED_WITHIN = re.compile(r"confirmed within (\d+) days")


def label(value: Any) -> Any:
    """What the page shows for a column name or a measure; other values as they are."""
    if not isinstance(value, str):
        return value
    if value in LABELS:
        return str(LABELS[value])
    if found := CONFIRMED_WITHIN.fullmatch(value):
        return gettext("confirmed within %(days)s days") % {"days": found[1]}
    if value.endswith(" net"):
        return gettext("%(value)s net") % {"value": value[: -len(" net")]}
    return value


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


@dataclass
class Chart:
    key: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    kind: str = (
        "lines"  # "lines": one line per numeric column over the rows; "bars": one bar per row
    )
    note: str = ""

    @property
    def svg(self) -> SafeString:
        return line_chart(self) if self.kind == "lines" else bar_chart(self)

    @property
    def display_columns(self) -> list[str]:
        return [label(c) for c in self.columns]

    @property
    def display_rows(self) -> list[list[Any]]:
        return [[label(v) for v in row] for row in self.rows]

    @property
    def display_summary(self) -> list[list[Any]]:
        return [[label(v) for v in row] for row in getattr(self, "summary", [])]


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
    return Event.objects.filter(type__in=types, occurred_at__gte=start, occurred_at__lt=end)


DIMENSIONS = ("channel", "topic", "store")


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
    rows = list(rows)
    # Store codes for the few ids seen: a join would make the scan leave the index.
    codes = dict(
        Store.objects.filter(pk__in={r[4] for r in rows if r[4]}).values_list("pk", "code")
    )
    return [
        (_week_key(week), type_, {"channel": channel, "topic": topic, "store": codes.get(store)}, n)
        for week, type_, channel, topic, store, n in rows
    ]


def weekly_by(
    grouped: list[tuple[str, str, dict[str, str], int]],
    start: datetime,
    end: datetime,
    dimension: str,
    title: str,
) -> Chart:
    """Opt-ins, opt-outs (complaints included) and net, per week and per value of ``dimension``."""
    key = dimension
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    values: set[str] = set()
    for week, type_, dims, n in grouped:
        value = dims[dimension]
        value = value if value not in (None, "") else "-"
        values.add(value)
        counts[(week, value)][0 if type_ == EventType.OPT_IN else 1] += n
    chart = Chart(key, title, ["week", *[f"{v} net" for v in sorted(values)]])
    detail = Chart(key, title, ["week", dimension, "opt-ins", "opt-outs", "net"])
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
    chart = Chart("unsubscribe", _("How people leave"), ["method", "count"], kind="bars")
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
    return [
        weekly_totals(grouped, start, end),
        weekly_by(grouped, start, end, "channel", _("Net subscribers per week, per channel")),
        weekly_by(grouped, start, end, "topic", _("Net subscribers per week, per topic")),
        weekly_by(grouped, start, end, "store", _("Net subscribers per week, per store")),
        doi(start, end, doi_ttl),
        unsubscribe_methods(start, end),
        deliverability(start, end),
    ]


# --- SVG, drawn on the server --------------------------------------------------------------------

PALETTE = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7f8f", "#57606a"]
W, H, PAD = 640, 220, 40


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def line_chart(chart: Chart) -> SafeString:
    columns = getattr(chart, "plot_columns", list(range(1, len(chart.columns))))[:8]
    values = [v for row in chart.rows for i in columns if (v := _num(row[i])) is not None]
    if not chart.rows or not values:
        return format_html('<p class="help">{}</p>', gettext("No data in this window."))
    lo, hi = min(0.0, min(values)), max(1.0, max(values))
    n = len(chart.rows)

    def x(i: int) -> float:
        return PAD + (W - 2 * PAD) * (i / max(1, n - 1))

    def y(v: float) -> float:
        return H - PAD - (H - 2 * PAD) * ((v - lo) / (hi - lo))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H + 20 * len(columns)}" '
        f'width="100%" role="img" aria-label="{escape(chart.title)}">',
        f'<line x1="{PAD}" y1="{y(0):.1f}" x2="{W - PAD}" y2="{y(0):.1f}" stroke="#999"/>',
        f'<text x="4" y="{y(hi) + 4:.1f}" font-size="11">{hi:g}</text>',
        f'<text x="4" y="{y(lo) + 4:.1f}" font-size="11">{lo:g}</text>',
        f'<text x="{PAD}" y="{H - 20}" font-size="11">{escape(chart.rows[0][0])}</text>',
        f'<text x="{W - PAD}" y="{H - 20}" font-size="11" text-anchor="end">'
        f"{escape(chart.rows[-1][0])}</text>",
    ]
    for k, col in enumerate(columns):
        color = PALETTE[k % len(PALETTE)]
        points = " ".join(
            f"{x(i):.1f},{y(v):.1f}"
            for i, row in enumerate(chart.rows)
            if (v := _num(row[col])) is not None
        )
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        ly = H + 14 + 20 * k
        parts.append(f'<rect x="{PAD}" y="{ly - 10}" width="12" height="12" fill="{color}"/>')
        name = escape(label(chart.columns[col]))
        parts.append(f'<text x="{PAD + 18}" y="{ly}" font-size="12">{name}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def bar_chart(chart: Chart) -> SafeString:
    rows = [(str(label(r[0])), _num(r[1]) or 0.0) for r in chart.rows]
    if not rows:
        return format_html('<p class="help">{}</p>', gettext("No data in this window."))
    top = max(1.0, max(v for _name, v in rows))
    height = 24 * len(rows) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="100%" '
        f'role="img" aria-label="{escape(chart.title)}">'
    ]
    for i, (name, value) in enumerate(rows):
        width = (W - 260) * value / top
        yy = 5 + 24 * i
        parts.append(f'<text x="0" y="{yy + 14}" font-size="12">{escape(name)}</text>')
        parts.append(
            f'<rect x="200" y="{yy}" width="{width:.1f}" height="18" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/>'
        )
        parts.append(f'<text x="{205 + width:.1f}" y="{yy + 14}" font-size="12">{value:g}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))
