from __future__ import annotations

import os

from anymail import urls as anymail_urls
from django.contrib import admin
from django.urls import include, path

from consents.views import healthz
from preferences.webhooks import bad_payloads_answered

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    # Email-service tracking events (bounces, complaints, clicks...), with anymail's own auth.
    path(
        "webhooks/anymail/",
        include((bad_payloads_answered(anymail_urls.urlpatterns), anymail_urls.app_name)),
    ),
    path("i18n/", include("django.conf.urls.i18n")),
    path("store/", include("preferences.store_urls")),
    path("", include("consents.public_urls")),
    path("", include("preferences.urls")),
]
# The preference-center benchmark's floor (bench/preferences_bench.py); off unless asked for.
if os.environ.get("BENCH_FLOOR_VIEW") == "1":
    urlpatterns.insert(0, path("bench/floor/", include("bench.floor")))
