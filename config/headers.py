"""Response headers the people's most requested pages set on every response, spelt once."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers
from django.utils.http import http_date

# What Django's ``never_cache`` writes on a response that has no Cache-Control yet.
NEVER_CACHE = "max-age=0, no-cache, no-store, must-revalidate, private"


_DATE: list[Any] = [None, ""]  # [the second, Django's http_date() of it]


def _now_http_date() -> str:
    """``http_date()``: the current second's date, spelt once per second."""
    second = int(time.time())
    if _DATE[0] != second:
        _DATE[1] = http_date(second)
        _DATE[0] = second
    return _DATE[1]


def never_cache(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Django's ``never_cache``, the same headers (``tests/test_headers.py``), for a view whose
    responses seldom carry caching headers of their own: those go through Django's, the others
    are given the two headers as they are, instead of each being parsed and spelt again."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        headers = response.headers
        if "Cache-Control" in headers or "Expires" in headers:
            add_never_cache_headers(response)
        else:
            headers["Expires"] = _now_http_date()
            headers["Cache-Control"] = NEVER_CACHE
        return response

    return wrapper
