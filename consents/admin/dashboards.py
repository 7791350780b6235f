"""Admin pages that are not a model's: dashboards and the retention report."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, time

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _

from consents import clock, retention
from consents.selectors import dashboards
from consents.services.access import access_log

# The dates a dashboard window may end on: far enough either way for any real question, and
# clear of the calendar's ends (0001-01-01 or 9999-12-31 overflow the weeks computed from them).
EARLIEST_END = date(1970, 1, 1)
LATEST_END = date(2100, 12, 31)


class WindowForm(forms.Form):
    """The dashboards' window: the day it ends (empty: now) and how many weeks before it."""

    until = forms.DateField(required=False)
    weeks = forms.IntegerField(required=False, min_value=1, max_value=104)

    def clean_until(self) -> date | None:
        until = self.cleaned_data["until"]
        if until is not None and not EARLIEST_END <= until <= LATEST_END:
            raise forms.ValidationError(
                _("Choose a date between %(first)s and %(last)s.")
                % {"first": EARLIEST_END.isoformat(), "last": LATEST_END.isoformat()}
            )
        return until

    def window(self) -> tuple[datetime, int]:
        until, weeks = self.cleaned_data["until"], self.cleaned_data["weeks"]
        end = datetime.combine(until, time.min, tzinfo=UTC) if until else clock.now()
        return end, weeks or 12


def _require(request: HttpRequest, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied


def dashboard(request: HttpRequest) -> HttpResponse:
    _require(request, "consents.view_dashboard")
    form = WindowForm(request.GET)
    context = {
        **admin.site.each_context(request),
        "title": _("Dashboards"),
        "query": request.GET.urlencode(),
        "errors": [e for errors in form.errors.values() for e in errors],
    }
    if not form.is_valid():
        context.update(until=request.GET.get("until", ""), weeks=request.GET.get("weeks", ""))
        return render(request, "admin/consents/dashboard.html", context, status=400)
    end, weeks = form.window()
    context.update(
        proof=dashboards.proof_tile(),
        charts=dashboards.charts(end, weeks, settings.DOI_CONFIRM_TTL),
        until=end.date().isoformat(),
        weeks=weeks,
    )
    return render(request, "admin/consents/dashboard.html", context)


def dashboard_csv(request: HttpRequest, chart: str) -> HttpResponse:
    _require(request, "consents.view_dashboard")
    form = WindowForm(request.GET)
    if not form.is_valid():
        errors = " ".join(e for errors in form.errors.values() for e in errors)
        return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
    end, weeks = form.window()
    found = {c.key: c for c in dashboards.charts(end, weeks, settings.DOI_CONFIRM_TTL)}
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
