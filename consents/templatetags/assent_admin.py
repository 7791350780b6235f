"""The admin's words for the codes it shows: channels and consent states, in the officer's
language."""

from __future__ import annotations

from django import template

from consents.models import ConsentState
from consents.vocab import Channel

register = template.Library()


@register.filter
def channel_label(channel: str) -> str:
    return str(Channel(channel).label) if channel in Channel.values else channel


@register.filter
def status_label(status: str) -> str:
    if status in ConsentState.Status.values:
        return str(ConsentState.Status(status).label)
    return status


@register.filter
def purpose_label(purpose: str) -> str:
    from consents.vocab import Purpose

    return str(Purpose(purpose).label) if purpose in Purpose.values else purpose
