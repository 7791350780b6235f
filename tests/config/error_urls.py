"""The site's URLs plus two views that fail, for the error-page tests."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from config.urls import handler500
from config.urls import urlpatterns as site_urlpatterns
from consents.models import Contact


def fails(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in a view")


def reads_the_database(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(Contact.objects.count()))


urlpatterns = [
    path("test/fails/", fails),
    path("test/reads-the-database/", reads_the_database),
    *site_urlpatterns,
]

__all__ = ["handler500", "urlpatterns"]
