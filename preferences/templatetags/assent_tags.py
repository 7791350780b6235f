from __future__ import annotations

from collections.abc import Sequence

from django import template

from consents.labels import channel_by as _channel_by
from consents.labels import channel_label as _channel_label
from consents.labels import channels_by as _channels_by

register = template.Library()


@register.filter
def channel_label(channel: str) -> str:
    """``email`` -> "Email" / "E-mail", in the active language (emails render under override)."""
    return str(_channel_label(channel))


@register.filter
def channel_by(channel: str) -> str:
    """``sms`` -> "by text message" / "par SMS", in the active language."""
    return _channel_by(channel)


@register.filter
def channels_by(channels: Sequence[str]) -> str:
    """``["email", "sms"]`` -> "by email or by text message", in the active language."""
    return _channels_by(channels)
