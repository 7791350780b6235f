""" "Download my data": the one-time link emailed from the preference page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from consents import http, links
from consents.links import LinkError
from preferences import access, data_summary
from preferences.views.common import bad_link


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def data_download(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button (mail scanners open links), POST downloads, once."""
    try:
        link = links.read("data_download", token)
    except LinkError as exc:
        if exc.reason in ("expired", "revoked"):
            return render(request, "preferences/data_download.html", {"state": "expired"})
        return bad_link(request, exc.reason)
    contact = link.contact
    assert contact is not None
    downloads_before = link.payload.get("n")
    if not isinstance(downloads_before, int):
        return bad_link(request, "invalid")
    if request.method == "POST":
        data = access.data_download(contact=contact, downloads_before=downloads_before)
        if data is not None:
            if request.POST.get("format") == "json":
                return http.json_file(data, f"my-data-{contact.public_id}.json")
            # A page to read, in the person's language; the JSON file is its second download.
            translation.activate(contact.locale)
            request.LANGUAGE_CODE = contact.locale
            context = data_summary.summary(contact, data)
            return render(request, "preferences/data_summary.html", context)
    elif access.self_exports(contact) == downloads_before:
        return render(
            request, "preferences/data_download.html", {"state": "ready", "action": request.path}
        )
    return render(request, "preferences/data_download.html", {"state": "used"})
