from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from consents.views import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("", include("preferences.urls")),
]
