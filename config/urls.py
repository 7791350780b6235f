from __future__ import annotations

import os

from anymail import urls as anymail_urls
from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from config import errors
from consents.views import healthz
from preferences.webhooks import bad_payloads_answered

urlpatterns = [
    # The people's pages first (after the email service's webhooks, below): the most requested,
    # tried in this order on every request (none of their paths begins like another entry's).
    path("", include("preferences.urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("api/", include("api.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("store/", include("preferences.store.urls")),
    path("", include("consents.public_urls")),
]
if settings.EMAIL_TRACKING_WEBHOOKS:
    # Email-service tracking events (bounces, complaints, clicks...), with anymail's own auth;
    # with DEBUG off the settings refuse to load without ANYMAIL_WEBHOOK_SECRET.
    # A payload anymail cannot read answers 400, never 500 (which the service would retry).
    # First: in a campaign the service posts an event per message sent, opened or clicked, the
    # most frequent request of all; the people's pages pay one prefix compared for it.
    urlpatterns.insert(
        0,
        path(
            "webhooks/anymail/",
            include((bad_payloads_answered(anymail_urls.urlpatterns), anymail_urls.app_name)),
        ),
    )
# The preference-center benchmark's floor (bench/preferences_bench.py); off unless asked for.
if os.environ.get("BENCH_FLOOR_VIEW") == "1":
    urlpatterns.insert(0, path("bench/floor/", include("bench.floor")))

# A page that cannot fail itself: no template engine, no database, no context processors.
handler500 = errors.server_error
