"""The store tablet and phone capture, under /store/ (see the delegated-consent issue)."""

from __future__ import annotations

urlpatterns: list = []
