"""Admin pages that are not a model's: dashboards and the retention report."""

from __future__ import annotations

import csv
from datetime import UTC, datetime

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _

from consents import clock, dashboards, retention
from consents.proof import access_log


def _end(request: HttpRequest) -> datetime:
    raw = request.GET.get("until", "")
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=UTC) if raw else clock.now()
    except ValueError:
        return clock.now()


def _weeks(request: HttpRequest) -> int:
    try:
        return max(1, min(104, int(request.GET.get("weeks", "12"))))
    except ValueError:
        return 12


def _require(request: HttpRequest, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied


def dashboard(request: HttpRequest) -> HttpResponse:
    _require(request, "consents.view_dashboard")
    end, weeks = _end(request), _weeks(request)
    context = {
        **admin.site.each_context(request),
        "title": _("Dashboards"),
        "charts": dashboards.charts(end, weeks, settings.DOI_CONFIRM_TTL),
        "until": end.date().isoformat(),
        "weeks": weeks,
        "query": request.GET.urlencode(),
    }
    return render(request, "admin/consents/dashboard.html", context)


def dashboard_csv(request: HttpRequest, chart: str) -> HttpResponse:
    _require(request, "consents.view_dashboard")
    found = {
        c.key: c
        for c in dashboards.charts(_end(request), _weeks(request), settings.DOI_CONFIRM_TTL)
    }
    if chart not in found:
        raise Http404
    table = getattr(found[chart], "table", found[chart])
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="assent-{chart}.csv"'
    writer = csv.writer(response)
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    for row in getattr(found[chart], "summary", []):
        writer.writerow(row)
    access_log(user=request.user, action="export_dashboard", contact=None, detail=chart)
    return response


def retention_report(request: HttpRequest) -> HttpResponse:
    """Dry run: who would be asked, who would be erased, and why. POST runs it for real."""
    _require(request, "consents.run_retention")
    if request.method == "POST":
        done = retention.run()
        if done.get("skipped"):
            messages.warning(request, _("Another retention run is under way: nothing was done."))
            return HttpResponseRedirect(reverse("admin:retention"))
        access_log(
            user=request.user,
            action="run_retention",
            contact=None,
            detail=f"asked {done['asked']}, erased {done['erased']}",
        )
        messages.success(
            request,
            _("Retention ran: %(asked)s asked, %(erased)s erased.") % done,
        )
        return HttpResponseRedirect(reverse("admin:retention"))
    plan = retention.plan(limit=1000)
    context = {
        **admin.site.each_context(request),
        "title": _("Retention (dry run)"),
        "plan": plan,
        "contact_url": reverse("admin:consents_contact_changelist"),
    }
    return render(request, "admin/consents/retention.html", context)
