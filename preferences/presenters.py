"""The preference page in words: what each box, each topic, each line of the history and each
"saved" message says, as plain data (strings, booleans, lists) that the templates draw.

The page shows dozens of boxes: each lazy translation is turned into text once per page
(``Words``), and a box is a dict, the fastest thing for the template language to read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.template import engines
from django.utils import timezone, translation
from django.utils.autoreload import file_changed
from django.utils.functional import Promise
from django.utils.html import escape
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from markupsafe import Markup

from config.jinja2 import local_date
from consents import catalogue
from consents.labels import (
    CHANNEL_WORDS,
    METHOD_FOR_PERSON,
    STATUS_LABELS,
    channel_label,
    channel_words,
    frequency_label,
)
from consents.models import ConsentState, Event, Topic
from consents.vocab import ANY, EventType, Reason
from preferences import center
from preferences.forms import shown_signed

# --- One box: a topic on a channel ---------------------------------------------------------------

# Page sentences about a box, not names of codes: they stay with the page that says them.
NO_ADDRESS = {
    "email": _("We have no email address for you."),
    "sms": _("We have no mobile phone number for you: add one under “Your contact details”."),
    "phone": _("We have no phone number for you: add one under “Your contact details”."),
    "postal": _("We have no postal address for you: add one under “Your contact details”."),
    "push": _("Notifications need our app, which you have not installed."),
}
STATE_LABELS = {
    **STATUS_LABELS,
    ConsentState.Status.NONE: _("Not subscribed"),
    "covered": _("Sent to you without a subscription"),
}
COVERED_EXPLANATIONS = {
    Reason.SOFT_OPT_IN: _(
        "You bought from us: the law lets us send you offers for similar products until you "
        "say no. Untick the box to stop them."
    ),
    Reason.LEGITIMATE_INTEREST: _(
        "The law lets us send you offers by post until you say no. Untick the box to stop them."
    ),
    Reason.GENERIC_ADDRESS: _(
        "This is a company mailbox: the law lets us write to it until you say no. Untick the box "
        "to stop."
    ),
    Reason.CONTRACT_IN_PROGRESS: _(
        "You have a contract with us for a related product: we may call you about it until you "
        "say no. Untick the box to stop."
    ),
    Reason.CALLBACK_REQUESTED: _(
        "You asked us to call you back: we may do so for 30 days. Untick the box to cancel."
    ),
}
COVERED_DEFAULT = _(
    "The law lets us send you these messages without a subscription, until you say no. Untick "
    "the box to stop them."
)


SINCE = _("since %(date)s")
STATE_EXPLANATIONS = {
    ConsentState.Status.PENDING: _(
        "Open the email we sent you and click its link to confirm. Nothing is sent to you "
        "before that."
    ),
    ConsentState.Status.INVALID: _(
        "Your earlier agreement was not given properly. Tick the box to say yes again."
    ),
    ConsentState.Status.OPTED_OUT: _("You said no: we do not send you these."),
    ConsentState.Status.OPTED_IN: _("You said yes: we send you these."),
    ConsentState.Status.NONE: _("We do not send you these."),
}


class Words:
    """Each lazy translation turned into text once per page: a page has dozens of boxes.

    Keyed by the lazy object's id: only the module-level sentences (which live as long as the
    process) are passed, never one made for the occasion (its id could be reused)."""

    def __init__(self) -> None:
        self.language = translation.get_language()
        self.zone = timezone.get_current_timezone()
        self.zone_name = str(self.zone)
        self.cache: dict[int, str] = {}
        self.labels: dict[str, str] = {}
        # A box's or frequency choice's markup, split where its topic's slug goes, per kind
        # (``cell_html``, ``radio_html``): the same on every page in this language and zone.
        self.boxes = _boxes(self.language, self.zone_name)

    def __call__(self, lazy: Any) -> str:
        key = id(lazy)
        if key not in self.cache:
            self.cache[key] = str(lazy)
        return self.cache[key]

    def label(self, frequency: str) -> str:
        """A frequency's name (``frequency_label``), once per page."""
        if frequency not in self.labels:
            self.labels[frequency] = frequency_label(frequency)
        return self.labels[frequency]

    def date(self, value: datetime, fmt: str = "DATE_FORMAT") -> str:
        """``local_date`` in this page's language and time zone."""
        return local_date(value, fmt, language=self.language, zone=self.zone)


# Each kind of box and frequency choice drawn, per language and time zone: what a box says
# depends on its channel, its state, its address, its date and the pause, never on the person
# but through these, so a kind drawn for one page is the same on the next. Kept for the process
# (each language and zone at most ``BOXES_KEPT`` kinds, then drawn afresh), forgotten when the
# settings or the translations change; in development (where the templates may change) per page.
_drawn_boxes: dict[tuple[str | None, str], dict[tuple[Any, ...], list[str]]] = {}
BOXES_KEPT = 4096


def _boxes(language: str | None, zone: str) -> dict[tuple[Any, ...], list[str]]:
    if settings.DEBUG:
        return {}
    boxes = _drawn_boxes.get((language, zone))
    if boxes is None or len(boxes) > BOXES_KEPT:
        boxes = _drawn_boxes[(language, zone)] = {}
    return boxes


def _forget_boxes(**kwargs: Any) -> None:
    _drawn_boxes.clear()


def _translations_changed(file_path: Any, **kwargs: Any) -> None:
    if str(file_path).endswith(".mo"):
        _forget_boxes()


setting_changed.connect(_forget_boxes)
file_changed.connect(_translations_changed)


PAUSED_LABEL = _("Subscribed, paused until %(date)s")
PAUSED_EXPLANATION = _("We send you nothing until then; it starts again by itself.")


def cell_context(cell: center.Cell, words: Words, paused: str = "") -> dict[str, Any]:
    """Everything one box shows, as plain strings; ``paused``: the end of a pause, as shown."""
    state = cell.state
    since = ""
    if cell.since and state not in ("covered", ConsentState.Status.NONE) and not paused:
        since = " · " + words(SINCE) % {"date": words.date(cell.since)}
    state_label = words(STATE_LABELS.get(state, state))
    if not cell.has_address:
        explanation = words(NO_ADDRESS.get(cell.channel, ""))
    elif paused and cell.receiving:
        state_label = words(PAUSED_LABEL) % {"date": paused}
        explanation = words(PAUSED_EXPLANATION)
    elif state == "covered":
        explanation = words(COVERED_EXPLANATIONS.get(cell.covered_by or "", COVERED_DEFAULT))
    else:
        explanation = words(STATE_EXPLANATIONS.get(state, STATE_EXPLANATIONS["none"]))
    return {
        "value": cell.value,
        "id": cell.dom_id,
        "shown": cell.has_address,
        "checked": cell.receiving,
        "label": words(channel_label(cell.channel)),
        "state": "paused" if paused and cell.receiving and cell.has_address else state,
        "state_label": state_label,
        "since": since,
        "explanation": explanation,
    }


def _drawn(template: str, **context: Any) -> str:
    """A part of the page from its template, without the newline that ends the file."""
    return engines["jinja2"].get_template(template).render(context).removesuffix("\n")


def box_html(c: dict[str, Any]) -> str:
    """One box (``cell_context``) as the page's list item (``preferences/_box.html``)."""
    return _drawn("preferences/_box.html", c=c)


# Stands for a topic's slug in a box's markup (a character no text of ours holds).
_SLUG = "\ue000"


def cell_html(cell: center.Cell, slug_html: str, words: Words, paused: str = "") -> str:
    """``box_html`` of ``cell``, whose topic's slug is ``slug_html`` (escaped).

    What a box says depends on its channel, its state, its address and its date, not on its
    topic but through the slug in its value and ids: the boxes of a page that differ only
    there are drawn once, and the slug put in its places.
    """
    since = cell.since  # the day it shows, if it shows one (``cell_context``): people share days
    if since is not None:
        shows = not paused and cell.state not in ("covered", ConsentState.Status.NONE)
        since = words.date(since) if shows else None
    key = (cell.channel, cell.status, cell.covered_by, cell.has_address, since, paused)
    parts = words.boxes.get(key)
    if parts is None:
        c = cell_context(cell, words, paused)
        c["value"] = f"{_SLUG}:{cell.channel}"
        c["id"] = f"cell-{_SLUG}-{cell.channel}"
        parts = words.boxes[key] = box_html(c).split(_SLUG)
    return slug_html.join(parts)


def radio_html(slug_html: str, r: dict[str, Any], words: Words) -> str:
    """One frequency choice of a topic (``topic_context``) as the page's radio button
    (``preferences/_radio.html``), drawn once per kind of choice on a page; ``slug_html``: the
    topic's slug, escaped."""
    key = ("radio", r["value"], r["checked"], r["label"])
    parts = words.boxes.get(key)
    if parts is None:
        parts = words.boxes[key] = _drawn("preferences/_radio.html", slug=_SLUG, r=r).split(_SLUG)
    return slug_html.join(parts)


def topic_context(
    view: center.TopicView,
    words: Words,
    paused: str = "",
    snapshot: catalogue.Snapshot | None = None,
) -> dict[str, Any]:
    """A topic's fieldset (``html``): its boxes (``cell_context``) and its frequency choices,
    each drawn (``cells_html``, ``radios_html``), in what the catalogue says of the topic.

    Its markup is the page's as it is sent (with Django's entities, as the templates' output,
    ``config.jinja2.Template``): it is put in the page after the body is drawn."""
    topic = view.topic
    slug_html = str(escape(topic.slug))  # as Django escapes it: the templates' entities
    cells = "".join([cell_html(c, slug_html, words, paused) for c in view.cells])
    parts = topic_parts(view, words.language, snapshot)
    if len(parts) == 2:  # no frequency to choose
        html = "".join((parts[0], cells, parts[1]))
    else:
        # A topic's choices, drawn once per kind (its frequencies, the one chosen) as its boxes.
        key = ("radios", tuple(topic.frequencies), view.frequency)
        radios = words.boxes.get(key)
        if radios is None:
            frequencies = [
                {"value": value, "checked": value == view.frequency, "label": words.label(value)}
                for value in topic.frequencies
            ]
            radios = words.boxes[key] = "".join(
                [radio_html(_SLUG, r, words) for r in frequencies]
            ).split(_SLUG)
        html = "".join((parts[0], cells, parts[1], slug_html.join(radios), parts[2]))
    return {"slug": topic.slug, "html": Markup(html)}


# Stand for a topic's boxes and frequency choices in its fieldset.
_CELLS, _RADIOS = "\ue003", "\ue004"


def topic_parts(
    view: center.TopicView, language: str | None, snapshot: catalogue.Snapshot | None
) -> tuple[str, ...]:
    """The topic's fieldset (``preferences/_topic.html``) cut where its boxes and its frequency
    choices go.

    It says what the catalogue says of the topic (its name, description and wording), nothing
    about the person: drawn once per catalogue snapshot and language, kept with the snapshot (a
    change of topic or notice replaces it)."""
    topic, notice = view.topic, view.notice
    key = ("preferences-topic", language, topic.slug, notice and notice.pk)
    fragments = snapshot.fragments if snapshot is not None else {}
    parts = fragments.get(key)
    if parts is None:
        t = {
            "name": topic.name,
            "description": topic.description,
            "notice": notice,
            "frequencies": topic.frequencies,
            "cells_html": Markup(_CELLS),
            "radios_html": Markup(_RADIOS),
        }
        html = engines["jinja2"].get_template("preferences/_topic.html").render({"t": t})
        before, rest = html.split(_CELLS)
        parts = fragments[key] = (before, *rest.split(_RADIOS))
    return parts  # type: ignore[no-any-return]


# --- The history: every choice, newest first ----------------------------------------------------

HISTORY_TYPES = {
    EventType.OPT_IN,
    EventType.DOI_CONFIRMED,
    EventType.OPT_OUT,
    EventType.PAUSE,
    EventType.COMPLAINT,
    EventType.CALLBACK_REQUEST,
}


def shown(event: Event | center.PastEvent) -> bool:
    return event.type in HISTORY_TYPES


def topic_name(slug: str, topics: dict[str, Topic]) -> str:
    return topics[slug].name if slug in topics else slug


# What the history's lines say (``history_choice``).
YES_TO_CONFIRM = _("Yes to “%(topic)s” by %(channel)s, to be confirmed by email")
YES = _("Yes to “%(topic)s” by %(channel)s")
CONFIRMED = _("Confirmed “%(topic)s” by %(channel)s")
NO_TO_EVERYTHING = _("Unsubscribed from all marketing")
NO_TO_CHANNEL = _("No to all marketing by %(channel)s")
NO_ON_EVERY_CHANNEL = _("No to “%(topic)s” on every channel")
NO = _("No to “%(topic)s” by %(channel)s")
RESUMED = _("Messages resumed")
PAUSED_UNTIL = _("All marketing paused until %(date)s")
COMPLAINED = _("Reported one of our emails as spam")
CALLBACK = _("Asked us to call back")


def history_choice(
    event: Event | center.PastEvent, topics: dict[str, Topic], words: Words | None = None
) -> str:
    """What a line of the history says; with the page's ``words``, each sentence translated
    once per page."""
    say = words or str
    topic = topic_name(event.topic, topics)
    lazy = CHANNEL_WORDS.get(event.channel)
    channel = say(lazy) if lazy is not None else event.channel  # ``channel_words``
    if event.type == EventType.OPT_IN:
        if event.data.get("doi") == "pending":
            return say(YES_TO_CONFIRM) % {"topic": topic, "channel": channel}
        return say(YES) % {"topic": topic, "channel": channel}
    if event.type == EventType.DOI_CONFIRMED:
        return say(CONFIRMED) % {"topic": topic, "channel": channel}
    if event.type == EventType.OPT_OUT:
        if event.topic == ANY and event.channel == ANY:
            return say(NO_TO_EVERYTHING)
        if event.topic == ANY:
            return say(NO_TO_CHANNEL) % {"channel": channel}
        if event.channel == ANY:
            return say(NO_ON_EVERY_CHANNEL) % {"topic": topic}
        return say(NO) % {"topic": topic, "channel": channel}
    if event.type == EventType.PAUSE:
        if center.is_resume(event):
            return say(RESUMED)
        until = datetime.fromisoformat(event.data.get("until", "").replace("Z", "+00:00"))
        end = words.date(until) if words is not None else local_date(until)
        return say(PAUSED_UNTIL) % {"date": end}
    if event.type == EventType.COMPLAINT:
        return say(COMPLAINED)
    return say(CALLBACK)


FROM_EMAIL_PROGRAM = _("From your email program")


def history_row(
    event: Event | center.PastEvent, topics: dict[str, Topic], words: Words | None = None
) -> dict[str, Any]:
    how = METHOD_FOR_PERSON.get(event.method, event.method) if event.method else ""
    if event.type == EventType.COMPLAINT:
        how = FROM_EMAIL_PROGRAM
    return {
        "at": event.occurred_at,
        "choice": history_choice(event, topics, words),
        "how": how,
        "notice": event.notice,
    }


def history_line(row: dict[str, Any], words: Words) -> dict[str, Any]:
    """A line of the history (``history_row``) with its instant spelt for the page, as the
    template's loop shows it (``preferences/center.html``): the dates formatted once per
    process and language, our sentences translated once per page."""
    at, how = row["at"], row["how"]
    return {
        "choice": row["choice"],
        "at": timezone.localtime(at, words.zone).isoformat(),
        "at_text": words.date(at, "DATETIME_FORMAT"),
        "how": words(how) if isinstance(how, Promise) else how,
        "notice": row["notice"],
    }


# --- What a save did, in words -----------------------------------------------------------------

DETAILS_DONE = {
    "phone_added": _("Your mobile number was added. Tick above what you want to receive on it."),
    "phone_changed": _(
        "Your mobile number was changed. Nothing is sent to the new number until you tick what "
        "you want on it."
    ),
    "phone_removed": _("Your mobile number was removed: we send nothing more to it."),
    "phone_same": _("This number was already on file: nothing has changed."),
    "postal_saved": _("Your postal address was saved."),
    "postal_same": _("This address was already on file: nothing has changed."),
}


def flash_lines(flash: dict[str, Any], topics: dict[str, Topic]) -> list[str]:
    """What was saved, in words."""
    kind = flash.get("kind")
    if kind in DETAILS_DONE:
        return [str(DETAILS_DONE[kind])]
    if kind == "paused":
        until = datetime.fromisoformat(flash["until"])
        date = local_date(until)
        return [_("All our marketing is paused until %(date)s.") % {"date": date}]
    if kind == "resumed":
        return [str(_("Your messages have resumed: you receive again what you chose."))]
    if kind == "not_paused":
        return [str(_("Nothing was paused: nothing has changed."))]
    if kind == "unsubscribed":
        return [
            str(
                _(
                    "You are unsubscribed from all our marketing. Messages about your orders and "
                    "your account continue."
                )
            )
        ]
    if kind == "already_unsubscribed":
        return [str(_("You were already unsubscribed from everything: nothing has changed."))]
    if kind == "language":
        return [str(_("This page and our messages are now in English."))]
    if kind == "download_sent":
        minutes = int(settings.DATA_DOWNLOAD_LINK_TTL.total_seconds() // 60)
        return [
            ngettext(
                "We have emailed you a link to download your data. It works once, for %(n)d "
                "minute.",
                "We have emailed you a link to download your data. It works once, for %(n)d "
                "minutes.",
                minutes,
            )
            % {"n": minutes}
        ]
    lines = []
    for change in flash.get("changes", []):
        values = {
            "topic": topic_name(change["topic"], topics),
            "channel": channel_words(change["channel"]),
            "frequency": frequency_label(change["frequency"]).lower(),
        }
        lines.append(
            {
                center.ChangeKind.SUBSCRIBED: _("You now receive “%(topic)s” by %(channel)s."),
                center.ChangeKind.PENDING: _(
                    "“%(topic)s” by %(channel)s: we have sent you an email to confirm. Nothing "
                    "is sent to you before you click its link."
                ),
                center.ChangeKind.UNSUBSCRIBED: _(
                    "You no longer receive “%(topic)s” by %(channel)s."
                ),
                center.ChangeKind.FREQUENCY: _("“%(topic)s”: %(frequency)s from now on."),
            }[center.ChangeKind(change["kind"])]
            % values
        )
    return lines or [str(_("Nothing has changed: your choices were already saved."))]


# --- The whole page ------------------------------------------------------------------------------


def page_context(
    state: center.CenterState, *, flash: dict[str, Any] | None = None, error: str = ""
) -> dict[str, Any]:
    """Everything ``preferences/preferences.html`` shows, from the state of the page."""
    words = Words()
    paused = words.date(state.pause_until) if state.pause_until else ""
    history = [history_row(e, state.topic_names, words) for e in state.history if shown(e)]
    return {
        "state": state,
        "topics": [topic_context(view, words, paused, state.snapshot) for view in state.topics],
        "notices_signed": shown_signed({view.topic.slug: view.notice for view in state.topics}),
        # The boxes the page shows (those with an address), in one field: a box shown and not
        # ticked is a "no" (``forms.preferences_choice``).
        "shown": " ".join(c.value for view in state.topics for c in view.cells if c.has_address),
        "history": history,
        "history_lines": [history_line(row, words) for row in history],
        "saved": flash_lines(flash, state.topic_names) if flash else None,
        "error": error,
        "pause_months": center.PAUSE_MONTHS,
    }
