"""The admin's words for the codes it shows: channels and consent states, in the officer's
language."""

from __future__ import annotations

from django import template

from consents import labels

register = template.Library()


register.filter("channel_label", labels.channel_name)
register.filter("status_label", labels.status_name)
register.filter("purpose_label", labels.purpose_name)
