"""A decision in words, for the compliance officer: the answer and why, with the facts it rests
on as links to their events. The reason code and the rule step stay available beside it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from consents import rules
from consents.labels import METHOD_HOW, REASON_WORDS, channel_by
from consents.models import Category, Event, Topic
from consents.vocab import EventType, Method, Reason


def _date(at: datetime | None) -> str:
    return formats.date_format(timezone.localtime(at), "DATE_FORMAT") if at else ""


def how(event: Event) -> str:
    """Where and how a fact was collected: "in store, Paris Rivoli", "on the sign-up form"."""
    store = event.store.name if event.store_id else ""
    method = event.method
    if method == Method.STORE_TABLET or (store and event.type == EventType.PURCHASE):
        return _("in store, %(store)s") % {"store": store} if store else _("in store")
    if method in METHOD_HOW:
        return str(METHOD_HOW[method])
    return method or _("by the system")


@dataclass
class Explanation:
    allowed: bool
    sentence: str
    facts: list[dict[str, Any]] = field(default_factory=list)


def _event_link(event: Event) -> str:
    return reverse("admin:consents_event_change", args=[event.pk])


class Explainer:
    """Explains decisions about one person: their events are read once."""

    def __init__(self, events: Sequence[Event]) -> None:
        self.events = list(events)
        self.by_seq = {e.seq: e for e in self.events}
        self.topics = {t.slug: t for t in Topic.objects.all()}
        self.categories = {c.slug: c for c in Category.objects.all()}

    def topic_name(self, slug: str | None) -> str:
        topic = self.topics.get(slug or "")
        return topic.name if topic else (slug or "")

    def category_name(self, slug: str | None) -> str:
        category = self.categories.get(slug or "")
        return category.label if category else (slug or "")

    def _fact(self, label: str, event: Event | None, text: str = "") -> dict[str, Any]:
        if event is None:
            return {"label": label, "text": text, "url": ""}
        words = text or f"{_date(event.occurred_at)}, {how(event)}"
        return {"label": label, "text": words, "url": _event_link(event)}

    def _purchase_for(self, family: str | None) -> Event | None:
        """The latest purchase (or contract) in the message's family: the soft opt-in's ground."""
        families = {slug: c.family for slug, c in self.categories.items()}
        bought = [
            e
            for e in self.events
            if e.type in (EventType.PURCHASE, EventType.CONTRACT_START)
            and families.get(e.data.get("category", "")) == family
        ]
        return bought[-1] if bought else None

    def explain(self, decision: rules.Decision, message: rules.Message) -> Explanation:
        reason, facts = decision.reason, decision.facts
        topic = self.topic_name(message.topic)
        by = channel_by(message.channel)
        used: list[dict[str, Any]] = []
        opt_in = self.by_seq.get(facts.get("opt_in_seq", -1))
        opt_out = self.by_seq.get(facts.get("opt_out_seq", -1))
        callback = self.by_seq.get(facts.get("callback_seq", -1))
        contract = self.by_seq.get(facts.get("contract_seq", -1))
        what = (
            _("a message about “%(topic)s” %(by)s") % {"topic": topic, "by": by}
            if topic
            else _("a message %(by)s") % {"by": by}
        )
        if reason == Reason.OPT_IN and opt_in is not None:
            sentence = _("this person said yes to “%(topic)s” %(by)s on %(date)s (%(how)s).") % {
                "topic": self.topic_name(opt_in.topic) if opt_in.topic != "*" else topic,
                "by": channel_by(opt_in.channel) if opt_in.channel != "*" else by,
                "date": _date(opt_in.occurred_at),
                "how": how(opt_in),
            }
            used.append(self._fact(_("The yes"), opt_in))
        elif reason == Reason.SOFT_OPT_IN:
            family = (
                self.categories[message.category].family
                if message.category in self.categories
                else message.category
            )
            bought = self._purchase_for(family)
            sentence = _(
                "this person bought %(bought)s on %(date)s (%(how)s) and was told at collection "
                "that they could object; a promotion for %(offer)s is an analogous product "
                "(soft opt-in, L34-5 CPCE)."
            ) % {
                "bought": self.category_name(bought.data.get("category")) if bought else "",
                "date": _date(bought.occurred_at) if bought else "",
                "how": how(bought) if bought else "",
                "offer": self.category_name(message.category),
            }
            if bought is not None:
                used.append(self._fact(_("The purchase"), bought))
        elif reason == Reason.OPTED_OUT and opt_out is not None:
            sentence = _("this person said no on %(date)s (%(how)s).") % {
                "date": _date(opt_out.occurred_at),
                "how": how(opt_out),
            }
            used.append(self._fact(_("The no"), opt_out))
        elif reason == Reason.PAUSED:
            sentence = _("this person paused our marketing until %(date)s.") % {
                "date": _date(facts.get("pause_until"))
            }
        elif reason == Reason.CALLBACK_REQUESTED and callback is not None:
            sentence = _("this person asked to be called back on %(date)s (valid 30 days).") % {
                "date": _date(callback.occurred_at)
            }
            used.append(self._fact(_("The callback request"), callback))
        elif reason == Reason.CONTRACT_IN_PROGRESS and contract is not None:
            sentence = _(
                "this person has a contract in progress for a related product (since %(date)s)."
            ) % {"date": _date(contract.occurred_at)}
            used.append(self._fact(_("The contract"), contract))
        elif reason == Reason.RETENTION_EXPIRED:
            sentence = _("the retention period ended on %(date)s: no more marketing.") % {
                "date": _date(facts.get("expires_at"))
            }
        else:
            sentence = short_reason(reason) + "."
        head = _("Allowed") if decision.allowed else _("Denied")
        return Explanation(
            decision.allowed,
            _("%(head)s: %(what)s. %(why)s") % {"head": head, "what": what, "why": _cap(sentence)},
            used,
        )


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def short_reason(reason: str) -> str:
    """A reason in a few words, for the summary at the top of the contact page."""
    if reason in REASON_WORDS:
        return str(REASON_WORDS[reason])
    return str(Reason(reason).label) if reason in Reason.values else reason
