"""``config.headers.never_cache`` writes what Django's ``never_cache`` writes."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from django.views.decorators.cache import never_cache as django_never_cache

from config.headers import never_cache


def response_with(headers: dict[str, str]):
    def view(request):
        response = HttpResponse("x")
        for name, value in headers.items():
            response[name] = value
        return response

    return view


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Cache-Control": "public, max-age=60"},
        {"Cache-Control": "no-transform"},
        {"Expires": "Thu, 01 Jan 2099 00:00:00 GMT"},
        {"Expires": "Thu, 01 Jan 2099 00:00:00 GMT", "Cache-Control": "s-maxage=5"},
    ],
)
def test_the_same_headers_as_djangos(headers, monkeypatch):
    monkeypatch.setattr("time.time", lambda: 1_800_000_000.0)
    request = RequestFactory().get("/")
    ours = never_cache(response_with(headers))(request)
    djangos = django_never_cache(response_with(headers))(request)
    assert dict(ours.headers) == dict(djangos.headers)
    assert "max-age=0" in ours["Cache-Control"]


def test_the_date_spelt_once_a_second_follows_the_clock(monkeypatch):
    request = RequestFactory().get("/")
    view = never_cache(response_with({}))
    seen = []
    for now in (1_800_000_000.2, 1_800_000_000.9, 1_800_000_001.0, 1_700_000_000.0):
        monkeypatch.setattr("time.time", lambda now=now: now)
        seen.append(view(request)["Expires"])
    assert seen == [
        "Fri, 15 Jan 2027 08:00:00 GMT",
        "Fri, 15 Jan 2027 08:00:00 GMT",
        "Fri, 15 Jan 2027 08:00:01 GMT",
        "Tue, 14 Nov 2023 22:13:20 GMT",
    ]
