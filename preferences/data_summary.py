""" "Download my data", read by a person: what we hold, what they agreed to and when, what we may
send them and why, in their language and in plain words; the JSON file comes with it."""

from __future__ import annotations

import base64
import json
from typing import Any

from django.utils.translation import gettext_lazy as _

from consents.labels import KIND_FOR_PERSON, channel_by
from consents.models import Category, Contact, Event, Topic
from consents.vocab import Reason
from preferences.presenters import history_row, shown

WHY = {
    Reason.OPT_IN: _("you said yes"),
    Reason.SOFT_OPT_IN: _(
        "you bought from us: the law lets us send you offers for similar products until you say no"
    ),
    Reason.LEGITIMATE_INTEREST: _("the law lets us write to you by post until you say no"),
    Reason.GENERIC_ADDRESS: _(
        "this is a company mailbox: the law lets us write to it until you say no"
    ),
    Reason.B2B_PROFESSIONAL: _(
        "it relates to your profession: the law lets us write to you until you say no"
    ),
    Reason.CONTRACT_IN_PROGRESS: _("you have a contract with us for a related product"),
    Reason.CALLBACK_REQUESTED: _("you asked us to call you back (for 30 days)"),
    Reason.REPERMISSION: _("to ask you, once, whether you still want our messages"),
    Reason.SERVICE: _("it is about your orders or your account"),
}


def _topics() -> dict[str, Topic]:
    return {t.slug: t for t in Topic.objects.all()}


def summary(contact: Contact, data: dict[str, Any]) -> dict[str, Any]:
    """The page's context, in the active language; ``data`` is the JSON export."""
    topics = _topics()
    categories = {c.slug: c.label for c in Category.objects.all()}
    details = [
        (_("Email address"), contact.email or ""),
        (_("Mobile phone"), contact.phone),
        (_("First name"), contact.first_name),
        (_("Postal address"), contact.postal_address),
        (_("Language of our messages"), "English" if contact.locale == "en" else "Français"),
        (_("You are"), KIND_FOR_PERSON.get(contact.kind, contact.kind)),
        (_("Profession"), contact.profession),
    ]
    allowed = []
    for row in data.get("decisions", []):
        if not row.get("allowed") or not row.get("topic"):
            continue
        topic = topics.get(row["topic"])
        allowed.append(
            {
                "what": (topic.name if topic else row["topic"]) + " " + channel_by(row["channel"]),
                "why": WHY.get(row.get("reason", ""), row.get("reason", "")),
            }
        )
    events = Event.objects.filter(contact=contact).select_related("notice").order_by("-seq")
    bought = sorted(
        {
            categories.get(p["category"], p["category"])
            for p in data.get("purchases_and_contracts", [])
            if p.get("category")
        }
    )
    return {
        "details": [(label, value) for label, value in details if value],
        "collected_at": contact.collected_at,
        # The preference page's own wording of each choice.
        "history": [history_row(e, topics) for e in events if shown(e)],
        "allowed": allowed,
        "bought": bought,
        "emails_sent": len(data.get("emails_sent", [])),
        "json_href": json_href(data),
        "json_name": f"my-data-{contact.public_id}.json",
    }


def json_href(data: dict[str, Any]) -> str:
    """The JSON file as a ``data:`` address: the page and the file leave in the one response
    the link allows, and nothing is kept on our side to fetch it a second time."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    return "data:application/json;charset=utf-8;base64," + base64.b64encode(text.encode()).decode(
        "ascii"
    )
