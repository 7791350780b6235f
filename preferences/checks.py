from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=True)
def webhook_secret_check(app_configs: Any, **kwargs: Any) -> list[Error]:
    """Without a shared secret, anyone could post forged bounces, complaints or opt-outs.

    (With DEBUG off the settings already refuse to load; this also tells a DEBUG-on check.)"""
    if settings.ANYMAIL.get("WEBHOOK_SECRET") or not settings.EMAIL_TRACKING_WEBHOOKS:
        return []
    return [
        Error(
            "ANYMAIL_WEBHOOK_SECRET is not set: the email-service webhooks would accept "
            "unauthenticated events.",
            hint="Set ANYMAIL_WEBHOOK_SECRET to 'user:password' and configure the same basic "
            "auth in your email service's webhook URL.",
            id="assent.E001",
        )
    ]
