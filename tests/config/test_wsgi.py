"""The WSGI entry point: the application, and what it loaded kept out of the cycle collector."""

from __future__ import annotations

import gc


def test_what_the_application_loaded_is_out_of_the_cycle_collectors_reach() -> None:
    from django.core.handlers.wsgi import WSGIHandler

    from config import wsgi

    assert isinstance(wsgi.application, WSGIHandler)
    # Frozen when the module was loaded: Django's and the apps' objects are not walked again.
    assert gc.get_freeze_count() > 10_000
