from __future__ import annotations

from django import template

from preferences.forms import channel_label as _channel_label

register = template.Library()


@register.filter
def channel_label(channel: str) -> str:
    """``email`` -> "Email" / "E-mail", in the active language (emails render under override)."""
    return str(_channel_label(channel))
