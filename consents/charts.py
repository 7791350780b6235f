"""A dashboard chart as the page shows it: its rows (counted by ``selectors.dashboards``), its
column names and values in the officer's language, and its drawing as SVG, made on the server."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.utils import formats
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

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


SPECIAL_NAMES: dict[str, dict[str, Any]] = {
    "topic": {
        "*": pgettext_lazy("dashboard", "All topics (unsubscribed from everything)"),
        "-": pgettext_lazy("dashboard", "No topic"),
    },
    "channel": {
        "*": pgettext_lazy("dashboard", "Every channel"),
        "-": pgettext_lazy("dashboard", "No channel"),
    },
    "store": {"-": pgettext_lazy("dashboard", "Online (no store)")},
}


def week_label(value: Any) -> Any:
    """A week's first day, as the page shows it: "2 March 2026", never "2026-03-02"."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return formats.date_format(date.fromisoformat(value), "DATE_FORMAT")
    return value


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
    # The codes of the ``named`` column (a channel, topic, store or method) and what the page
    # shows for them; the "<code> net" columns of a per-dimension chart are named after them too.
    named: str = ""
    names: dict[str, Any] = field(default_factory=dict)

    @property
    def svg(self) -> SafeString:
        return line_chart(self) if self.kind == "lines" else bar_chart(self)

    def column_label(self, column: str) -> Any:
        code = column[: -len(" net")] if column.endswith(" net") else None
        if code is not None and code in self.names:
            return gettext("%(value)s net") % {"value": self.names[code]}
        return label(column)

    def value_label(self, column: int, value: Any) -> Any:
        """What the page shows for a cell: a code by its name, a measure by its label."""
        named = column < len(self.columns) and self.columns[column] == self.named
        if column < len(self.columns) and self.columns[column] == "week":
            return week_label(value)
        if named and isinstance(value, str) and value in self.names:
            return str(self.names[value])
        return value if named else label(value)

    @property
    def display_columns(self) -> list[str]:
        return [self.column_label(c) for c in self.columns]

    @property
    def display_rows(self) -> list[list[Any]]:
        return [[self.value_label(i, v) for i, v in enumerate(row)] for row in self.rows]

    @property
    def display_summary(self) -> list[list[Any]]:
        return [[label(v) for v in row] for row in getattr(self, "summary", [])]


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

    first, last = week_label(chart.rows[0][0]), week_label(chart.rows[-1][0])

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H + 20 * len(columns)}" '
        f'width="100%" role="img" aria-label="{escape(chart.title)}">',
        f'<line x1="{PAD}" y1="{y(0):.1f}" x2="{W - PAD}" y2="{y(0):.1f}" stroke="#999"/>',
        f'<text x="4" y="{y(hi) + 4:.1f}" font-size="11">{hi:g}</text>',
        f'<text x="4" y="{y(lo) + 4:.1f}" font-size="11">{lo:g}</text>',
        f'<text x="{PAD}" y="{H - 20}" font-size="11">{escape(first)}</text>',
        f'<text x="{W - PAD}" y="{H - 20}" font-size="11" text-anchor="end">{escape(last)}</text>',
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
        name = escape(chart.column_label(chart.columns[col]))
        parts.append(f'<text x="{PAD + 18}" y="{ly}" font-size="12">{name}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def bar_chart(chart: Chart) -> SafeString:
    rows = [(str(chart.value_label(0, r[0])), _num(r[1]) or 0.0) for r in chart.rows]
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
