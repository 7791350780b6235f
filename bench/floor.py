"""The floor of the preference-center benchmark: a bare Django view running N trivial queries.

Mounted only when ``BENCH_FLOOR_VIEW=1`` (see config/urls.py); never in a real deployment.
"""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import path


def floor(request: HttpRequest) -> HttpResponse:
    count = min(int(request.GET.get("n", "1") or 1), 100)
    with connection.cursor() as cursor:
        for _ in range(count):
            cursor.execute("SELECT 1")
            cursor.fetchone()
    return HttpResponse(f"{count} queries\n", content_type="text/plain")


urlpatterns = [path("", floor, name="bench_floor")]
