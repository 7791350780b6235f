"""The preference page's boxes and frequency choices, each kind drawn once per page from its
template and each topic's slug put in (``presenters``), and the history's lines, their instants
spelt once per page, are the markup the page's loops drew, byte for byte: every state, with and
without an address, paused or not, in both languages, with values that need escaping."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from django.template import engines
from django.utils import timezone, translation
from django.utils.html import format_html

from config import jinja2 as config_jinja2
from consents.models import ConsentState, Notice, Topic
from consents.vocab import Reason
from preferences import center, presenters
from preferences.views import preference_center

# What templates/jinja2/preferences/center.html wrote for a topic's boxes and its frequencies.
BOX_TEMPLATE = (
    '{% for c in cells %}<li class="cell"><div class="check"><input type="checkbox" name="on" '
    'value="{{ c["value"] }}" id="{{ c["id"] }}"{% if c["checked"] %} checked{% endif %}'
    '{% if not c["shown"] %} disabled{% endif %} aria-describedby="{{ c["id"] }}-state"><label '
    'for="{{ c["id"] }}">{{ c["label"] }}</label></div><p class="state state-{{ c["state"] }}" '
    'id="{{ c["id"] }}-state"><strong class="state-label">{{ c["state_label"] }}</strong>'
    '{{ c["since"] }}. {{ c["explanation"] }}</p></li>{% endfor %}'
)
RADIO_TEMPLATE = (
    '{% for r in frequencies %}<div class="check"><input type="radio" name="frequency-{{ slug }}" '
    'value="{{ r["value"] }}" id="frequency-{{ slug }}-{{ r["value"] }}"{% if r["checked"] %} '
    'checked{% endif %}><label for="frequency-{{ slug }}-{{ r["value"] }}">{{ r["label"] }}'
    "</label></div>{% endfor %}"
)

STATUSES = [s.value for s in ConsentState.Status]
COVERED = [None, Reason.SOFT_OPT_IN, Reason.LEGITIMATE_INTEREST, Reason.CALLBACK_REQUESTED, "X"]
CHANNELS = ["email", "sms", "phone", "postal", "push"]
SINCE = [None, datetime(2026, 3, 12, 23, 30, tzinfo=UTC), datetime(2026, 3, 13, 8, 0, tzinfo=UTC)]


def _cells(topic: Topic) -> list[center.Cell]:
    return [
        center.Cell(
            topic=topic,
            channel=channel,
            status=status,
            since=since,
            has_address=has_address,
            covered_by=covered,
        )
        for channel, status, covered, has_address, since in itertools.product(
            CHANNELS, STATUSES, COVERED, [True, False], SINCE
        )
    ]


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("paused", ["", "1 <juin> 2026"])
@pytest.mark.parametrize("slug", ["promotions", "a<b>&'\"c"])
def test_boxes_are_the_templates_markup(language: str, paused: str, slug: str) -> None:
    topic = Topic(slug=slug, name_fr="T", name_en="T", channels=CHANNELS)
    cells = _cells(topic)
    with translation.override(language):
        expected = (
            engines["jinja2"]
            .from_string(BOX_TEMPLATE)
            .render(
                {"cells": [presenters.cell_context(c, presenters.Words(), paused) for c in cells]}
            )
        )
        words = presenters.Words()
        slug_html = str(presenters.escape(slug))
        drawn = "".join(presenters.cell_html(c, slug_html, words, paused) for c in cells)
        # Through the template, as the page puts it: the quotes' entities as Django writes them.
        drawn = engines["jinja2"].from_string("{{ x }}").render({"x": presenters.Markup(drawn)})
    assert drawn == expected
    assert drawn.count("<li ") == len(cells)


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("slug", ["newsletter", "a<b>&'\"c"])
def test_frequency_choices_are_the_templates_markup(language: str, slug: str) -> None:
    with translation.override(language):
        words = presenters.Words()
        frequencies = [
            {"value": value, "checked": value == "monthly", "label": words.label(value)}
            for value in ["weekly", "monthly", "x<'y'>"]
        ]
        expected = (
            engines["jinja2"]
            .from_string(RADIO_TEMPLATE)
            .render({"frequencies": frequencies, "slug": slug})
        )
        slug_html = str(presenters.escape(slug))
        drawn = "".join(presenters.radio_html(slug_html, r, words) for r in frequencies)
        drawn = engines["jinja2"].from_string("{{ x }}").render({"x": presenters.Markup(drawn)})
    assert drawn == expected


# What templates/jinja2/preferences/center.html wrote for the history's lines.
HISTORY_TEMPLATE = """    {% for row in history %}
    <li>
      <p class="history-choice"><strong>{{ row["choice"] }}</strong></p>
      <p class="hint"><time datetime="{{ row["at"]|date("c") }}">{{ row["at"]|date("DATETIME_FORMAT") }}</time>{% if row["how"] %} · {{ row["how"] }}{% endif %}</p>
      {% if row["notice"] %}
      <details class="notice">
        <summary>{{ _("Wording you were shown (version %(version)s)", version=row["notice"].version) }}</summary>
        <p>{{ row["notice"].text }}</p>
      </details>
      {% endif %}
    </li>
    {% endfor %}
"""  # noqa: E501


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York"])
def test_history_lines_are_the_templates_markup(language: str, zone: str) -> None:
    notice = center.ShownNotice(3, 'J\'accepte <tout> & "plus"')
    rows = [
        {"at": at, "choice": choice, "how": how, "notice": shown}
        for at in SINCE[1:]
        for choice in ["Oui à « Lettre »", "<b>'x'</b> & \"y\""]
        for how in ["", presenters.METHOD_FOR_PERSON["web_form"], "<i>l'app</i>"]
        for shown in [None, notice]
    ]
    with translation.override(language), timezone.override(zone):
        expected = engines["jinja2"].from_string(HISTORY_TEMPLATE).render({"history": rows})
        words = presenters.Words()
        lines = [presenters.history_line(row, words) for row in rows]
        page = engines["jinja2"].get_template("preferences/center.html").template.filename
        with open(page, encoding="utf-8") as f:
            loop = f.read()
        body = loop[loop.index("    {% for row in history_lines %}") : loop.index("  </ol>")]
        drawn = engines["jinja2"].from_string(body).render({"history_lines": lines})
    assert drawn == expected
    assert drawn.count("<li>") == len(rows)


def test_boxes_drawn_for_one_page_are_those_of_the_next() -> None:
    """The kinds of box drawn are kept for the process, per language and time zone, the pause
    in the key: a page drawn after others in other languages, zones and pauses has the boxes it
    would have had drawn alone."""
    topic = Topic(slug="promotions", name_fr="T", name_en="T", channels=CHANNELS)
    cells = _cells(topic)
    orders = [
        ("fr", "Europe/Paris", ""),
        ("en", "Europe/Paris", ""),
        ("fr", "Europe/Paris", "1 juin 2026"),
        ("fr", "America/New_York", ""),
        ("en", "UTC", "June 1, 2026"),
    ]

    def drawn(language: str, zone: str, paused: str) -> str:
        with translation.override(language), timezone.override(zone):
            words = presenters.Words()
            return "".join(presenters.cell_html(c, "promotions", words, paused) for c in cells)

    presenters._forget_boxes()
    alone = {}
    for order in orders:
        alone[order] = drawn(*order)
        presenters._forget_boxes()
    for order in orders + orders[::-1]:
        same = drawn(*order) == alone[order]
        assert same, order


def test_kinds_of_box_are_forgotten_when_the_settings_change(settings: Any) -> None:
    topic = Topic(slug="promotions", name_fr="T", name_en="T", channels=CHANNELS)
    with translation.override("fr"):
        presenters.cell_html(_cells(topic)[0], "promotions", presenters.Words())
        assert presenters._drawn_boxes
        settings.DATE_FORMAT = "Y"
        assert not presenters._drawn_boxes


def test_kinds_of_box_are_drawn_per_page_in_development(settings: Any) -> None:
    settings.DEBUG = True
    words = presenters.Words()
    assert words.boxes is not presenters.Words().boxes


HISTORY_EVENTS = [
    ("opt_in", "newsletter", "email", {}),
    ("opt_in", "newsletter", "sms", {"doi": "pending"}),
    ("doi_confirmed", "newsletter", "email", {}),
    ("opt_out", "*", "*", {}),
    ("opt_out", "*", "sms", {}),
    ("opt_out", "newsletter", "*", {}),
    ("opt_out", "a<b>'c", "fax", {}),
    ("pause", "*", "*", {"until": "2026-06-01T10:00:00Z"}),
    ("pause", "*", "*", {"until": "2026-03-12T23:30:00.000001+00:00", "resume": True}),
    ("complaint", "", "email", {}),
    ("callback_request", "", "phone", {}),
]


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_history_says_with_the_pages_words_what_it_says_alone(language: str) -> None:
    """The history's sentences translated once per page (``Words``) are the sentences
    translated each on its own."""
    topics = {"newsletter": Topic(slug="newsletter", name_fr="Lettre « x »", name_en="Letter")}
    at = SINCE[1]
    with translation.override(language):
        words = presenters.Words()
        for kind, topic, channel, data in HISTORY_EVENTS:
            event = center.PastEvent(
                seq=1,
                type=kind,
                topic=topic,
                channel=channel,
                occurred_at=at,
                method="web_form",
                proof="",
                data=data,
                notice=None,
            )
            alone = presenters.history_row(event, topics)
            assert presenters.history_row(event, topics, words) == alone, kind
            assert alone["choice"] and isinstance(alone["choice"], str)


QUOTED = 'l\'été "<b>" & co'


def _page_context(language: str, *, paused: bool, saved: bool) -> dict[str, Any]:
    """What ``page_context`` gives the body, for made-up topics and history full of quotes."""
    notice = Notice(version=2, text=f"J'accepte {QUOTED}")
    topics = [
        Topic(
            slug=f"a'b\"c{i}",
            name_fr=f"Thème {QUOTED}",
            name_en=f"Topic {QUOTED}",
            description_fr=QUOTED if i else "",
            description_en=QUOTED if i else "",
            channels=CHANNELS,
            frequencies=["weekly", "monthly"] if i % 2 else [],
        )
        for i in range(3)
    ]
    views = [
        center.TopicView(t, notice if i else None, _cells(t)[i * 7 : i * 7 + 5], "monthly")
        for i, t in enumerate(topics)
    ]
    state = SimpleNamespace(
        contact=SimpleNamespace(email="o'b\"x@x.fr", phone=QUOTED, postal_address=QUOTED),
        pause_until=SINCE[1] if paused else None,
        unsubscribed_all=not paused,
    )
    with translation.override(language):
        words = presenters.Words()
        pause = words.date(SINCE[1]) if paused else ""
        rows = [
            {"at": SINCE[2], "choice": QUOTED, "how": QUOTED, "notice": notice},
            {"at": SINCE[1], "choice": "Oui", "how": "", "notice": None},
        ]
        return {
            "state": state,
            "topics": [presenters.topic_context(v, words, pause) for v in views],
            "notices_signed": QUOTED,
            "history": rows,
            "history_lines": [presenters.history_line(row, words) for row in rows],
            "saved": [QUOTED, "Enregistré"] if saved else None,
            "error": QUOTED if saved else "",
            "pause_months": center.PAUSE_MONTHS,
        }


def _whole_body(context: dict[str, Any], token: str, language: str) -> str:
    """The body drawn whole by its template, the topics' fieldsets in its loop."""
    csrf_input = format_html('<input type="hidden" name="csrfmiddlewaretoken" value="{}">', token)
    return (
        engines["jinja2"]
        .get_template("preferences/center.html")
        .render(
            {**context, "csrf_input": csrf_input, "gettext": config_jinja2.gettext_in(language)}
        )
    )


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("paused", [False, True])
@pytest.mark.parametrize("saved", [False, True])
def test_the_body_with_its_topics_put_in_is_the_templates(
    language: str, paused: bool, saved: bool
) -> None:
    """The page's body, drawn around a mark per topic and the topics' fieldsets put in after
    (``body_pieces``), is the template's drawing with the fieldsets in it, entities included."""
    context = _page_context(language, paused=paused, saved=saved)
    token = "t'o\"k<e>n"
    with translation.override(language):
        pieces = preference_center.body_pieces(context, csrf_token=token)
        whole = _whole_body(context, token, language)
    body = "".join(pieces)
    same = body == whole
    assert same
    assert "&#39;" not in body and "&#34;" not in body
    assert body.count('<fieldset class="topic">') == 3


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("paused", ["", "1 <juin> 2026"])
def test_a_topics_fieldset_is_its_templates_markup(language: str, paused: str) -> None:
    """A topic's fieldset (``topic_context``: its parts, boxes and choices each drawn once per
    kind and the slug put in) is ``_topic.html`` drawn with the loops it replaced, for topics
    with and without frequencies, the one chosen offered or not, drawn again from what is kept."""
    presenters._forget_boxes()
    notice = Notice(version=3, text=QUOTED)
    cases = []
    for i, (frequencies, chosen) in enumerate(
        [
            ([], ""),
            (["weekly", "monthly"], "monthly"),
            (["weekly", "monthly"], "weekly"),
            (["weekly"], "daily"),
            (["x<'y'>"], "x"),
        ]
    ):
        topic = Topic(
            slug=f"a<b>&'\"c{i}",
            name_fr=QUOTED,
            name_en=QUOTED,
            description_fr=QUOTED if i % 2 else "",
            description_en=QUOTED if i % 2 else "",
            channels=CHANNELS,
            frequencies=frequencies,
        )
        cases.append(center.TopicView(topic, notice if i else None, _cells(topic)[i::13], chosen))
    with translation.override(language):
        for view in cases + cases:
            words = presenters.Words()
            boxes = (
                engines["jinja2"]
                .from_string(BOX_TEMPLATE)
                .render({"cells": [presenters.cell_context(c, words, paused) for c in view.cells]})
            )
            frequencies = [
                {"value": v, "checked": v == view.frequency, "label": words.label(v)}
                for v in view.topic.frequencies
            ]
            radios = (
                engines["jinja2"]
                .from_string(RADIO_TEMPLATE)
                .render({"frequencies": frequencies, "slug": view.topic.slug})
            )
            t = {
                "name": view.topic.name,
                "description": view.topic.description,
                "notice": view.notice,
                "frequencies": view.topic.frequencies,
                "cells_html": presenters.Markup(boxes),
                "radios_html": presenters.Markup(radios),
            }
            expected = engines["jinja2"].get_template("preferences/_topic.html").render({"t": t})
            drawn = presenters.topic_context(view, words, paused)["html"]
            same = drawn == expected
            assert same, view.topic.slug


def test_a_body_holding_the_topics_mark_is_drawn_whole() -> None:
    """A text that holds the mark where the topics go (it is drawn at random per process, but a
    person may write anything) does not cut the body in the wrong places."""
    context = _page_context("fr", paused=False, saved=True)
    context["state"].contact.postal_address = f"1 rue {preference_center._TOPIC_MARK} Paris"
    token = "t0k3n"
    with translation.override("fr"):
        body = "".join(preference_center.body_pieces(context, csrf_token=token))
        whole = _whole_body(context, token, "fr")
    same = body == whole
    assert same
    assert body.count('<fieldset class="topic">') == 3
