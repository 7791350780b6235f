from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def brand(request: HttpRequest) -> dict[str, Any]:
    """The brand, and who is responsible for the data, with the privacy notice (every page)."""
    return {
        "brand_name": settings.BRAND_NAME,
        "controller_name": settings.CONTROLLER_NAME,
        "controller_address": settings.CONTROLLER_ADDRESS,
        "privacy_notice_url": settings.PRIVACY_NOTICE_URL,
    }
