from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def brand(request: HttpRequest) -> dict[str, str]:
    return {"brand_name": settings.BRAND_NAME}
