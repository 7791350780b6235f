"""Links in emails to people (not staff): no login, a signed token; GET shows, POST acts.

Public URLs: they live in emails already sent, never change them.
"""

from __future__ import annotations

from django.urls import path

from consents import public_views

urlpatterns = [
    path("keep/<str:token>/", public_views.retention_keep, name="retention_keep"),
    path("confirm-email/<str:token>/", public_views.email_confirm, name="email_confirm"),
    path("reconfirm/<str:token>/", public_views.notice_reconfirm, name="notice_reconfirm"),
]
