"""The admin of what flows in and out: the outbox of emails, webhook endpoints and their
deliveries, imports.

The outbox shows what was sent to whom, never the message or its links. Endpoints are created and
changed through ``consents.webhooks_out`` (the URL is checked against addresses inside the
network); their secret is shown once, in the answer to the POST that made it, never again. Imports
are uploaded, previewed (a dry run), then confirmed.
"""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Avg, Count, Max, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from consents import clock, imports, webhooks_out
from consents.admin.common import ContactSearchMixin, ReadOnlyAdminMixin, UTCDateTimeField
from consents.models import ImportRun, Outbox, Topic, WebhookDelivery, WebhookEndpoint
from consents.services.access import access_log

# --- The outbox ----------------------------------------------------------------------------------


@admin.register(Outbox)
class OutboxAdmin(ReadOnlyAdminMixin, ContactSearchMixin, admin.ModelAdmin):
    """What was sent to whom, when, and how the sending went; never the message itself.

    A row's links are minted only when it is sent, and neither they nor the body are shown
    here: a pending confirmation must not be something staff can copy and use."""

    list_display = ("id", "template", "to", "status", "created_at", "sent_at", "attempts")
    list_filter = ("status", "template")
    list_select_related = ("contact",)
    list_per_page = 50
    show_full_result_count = False
    ordering = ("-pk",)
    fields = (
        "contact",
        "template",
        "to",
        "language",
        "is_service",
        "link_scopes",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "sent_at",
        "message_id",
        "provider_message_id",
        "last_error",
    )
    readonly_fields = fields

    @admin.display(description=_("links"))
    def link_scopes(self, obj: Outbox) -> str:
        # The kinds of link the email carries, not the links: they do not exist until it is sent.
        return ", ".join(sorted({spec.get("scope", "?") for spec in obj.links.values()})) or "-"

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        row = self.get_object(request, object_id)
        if row is not None and request.method == "GET" and self.has_view_permission(request, row):
            access_log(
                user=request.user,
                action="view_outbox",
                contact=row.contact,
                detail=f"outbox #{row.pk} ({row.template})",
            )
        return super().change_view(request, object_id, form_url, extra_context)


# --- Webhook endpoints ---------------------------------------------------------------------------


class EndpointForm(forms.ModelForm):
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        label=_("event types"),
        choices=[(t, t) for t in webhooks_out.EVENT_TYPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None checked: every type."),
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "description", "event_types", "active")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        try:
            webhooks_out.check_url(url)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["url"]) from exc
        return url


class ReplayForm(forms.Form):
    start = UTCDateTimeField(
        label=_("from (UTC)"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    end = UTCDateTimeField(
        label=_("until (UTC)"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end <= start:
            self.add_error("end", _("The end of the range is after its start."))
        return cleaned


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    change_form_template = "admin/consents/webhookendpoint/change_form.html"
    list_display = ("__str__", "url", "active", "failing_since", "types")
    list_filter = ("active",)

    @admin.display(description=_("event types"))
    def types(self, obj: WebhookEndpoint) -> str:
        return ", ".join(obj.event_types) or gettext("every type")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # its deliveries are the record of what was sent: switch it off instead

    def save_model(
        self, request: HttpRequest, obj: WebhookEndpoint, form: forms.Form, change: bool
    ) -> None:
        data = form.cleaned_data
        if change:
            saved = webhooks_out.endpoint_update(
                endpoint=obj,
                url=data["url"],
                event_types=data["event_types"],
                description=data["description"],
                active=data["active"],
            )
        else:
            saved, secret = webhooks_out.endpoint_create(
                url=data["url"],
                event_types=data["event_types"],
                description=data["description"],
                active=data["active"],
            )
            request._webhook_secret = secret  # type: ignore[attr-defined]
        for field in WebhookEndpoint._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))

    def response_add(self, request: HttpRequest, obj: WebhookEndpoint, *args: Any) -> HttpResponse:
        return self._secret_page(request, obj, request._webhook_secret)  # type: ignore[attr-defined]

    def _secret_page(self, request: HttpRequest, obj: WebhookEndpoint, secret: str) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": _("The endpoint's signing secret"),
            "endpoint": obj,
            "secret": secret,
            "opts": self.model._meta,
        }
        # Rendered once, in this answer to the POST: it is not shown again.
        response = render(request, "admin/consents/webhookendpoint/secret.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def get_urls(self) -> list:
        def view(fn: Any) -> Any:
            return self.admin_site.admin_view(fn)

        return [
            path(
                "<int:pk>/rotate/",
                view(self.rotate_view),
                name="consents_webhookendpoint_rotate",
            ),
            path(
                "<int:pk>/replay/",
                view(self.replay_view),
                name="consents_webhookendpoint_replay",
            ),
        ] + super().get_urls()

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        endpoint = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if endpoint is not None:
            context.update(endpoint_activity(endpoint))
            context["replay_form"] = ReplayForm(prefix="replay")
        return super().change_view(request, object_id, form_url, context)

    def _endpoint(self, request: HttpRequest, pk: int) -> WebhookEndpoint:
        if not request.user.has_perm("consents.change_webhookendpoint"):
            raise PermissionDenied
        return get_object_or_404(WebhookEndpoint, pk=pk)

    def rotate_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponse(status=405, headers={"Allow": "POST"})
        endpoint = self._endpoint(request, pk)
        secret = webhooks_out.endpoint_rotate_secret(endpoint=endpoint)
        access_log(user=request.user, action="rotate_webhook_secret", contact=None, detail=str(pk))
        return self._secret_page(request, endpoint, secret)

    def replay_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponse(status=405, headers={"Allow": "POST"})
        endpoint = self._endpoint(request, pk)
        form = ReplayForm(request.POST, prefix="replay")
        back = HttpResponseRedirect(reverse("admin:consents_webhookendpoint_change", args=[pk]))
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    messages.error(request, error)
            return back
        try:
            count = webhooks_out.deliveries_replay(
                endpoint=endpoint, start=form.cleaned_data["start"], end=form.cleaned_data["end"]
            )
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
        else:
            messages.success(request, gettext("%(n)s messages will be sent again.") % {"n": count})
        return back


def endpoint_activity(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """The endpoint page's figures: recent deliveries and how fast the receiver answers."""
    since = clock.now() - timedelta(days=1)
    recent = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("-id")
    day = WebhookDelivery.objects.filter(endpoint=endpoint, created_at__gte=since).aggregate(
        total=Count("id"),
        delivered=Count("id", filter=Q(status=WebhookDelivery.Status.DELIVERED)),
        pending=Count("id", filter=Q(status=WebhookDelivery.Status.PENDING)),
        failed=Count("id", filter=Q(status=WebhookDelivery.Status.FAILED)),
        latency=Avg("latency_ms", filter=Q(status=WebhookDelivery.Status.DELIVERED)),
        slowest=Max("latency_ms", filter=Q(status=WebhookDelivery.Status.DELIVERED)),
    )
    return {
        "deliveries": list(recent[:50]),
        "day": day,
    }


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """What was sent to which system, when, and how it went (the address is not shown)."""

    list_display = (
        "created_at", "endpoint", "type", "status", "attempts", "response_status", "latency_ms",
    )  # fmt: skip
    list_filter = ("status", "type", "endpoint")
    list_select_related = ("endpoint",)
    list_per_page = 50
    show_full_result_count = False
    fields = (
        "endpoint", "message_id", "type", "contact", "sequence", "payload", "status", "attempts",
        "created_at", "last_attempt_at", "next_attempt_at", "give_up_at", "delivered_at",
        "response_status", "latency_ms", "last_error",
    )  # fmt: skip
    readonly_fields = fields


# --- Imports -------------------------------------------------------------------------------------


def import_dir() -> Path:
    folder = Path(settings.VAR_DIR) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class UploadForm(forms.Form):
    file = forms.FileField(label=_("file (CSV or XLSX)"))
    preset = forms.ChoiceField(
        label=_("format"),
        choices=[("mailchimp", "Mailchimp"), ("brevo", "Brevo"), ("assent", "Assent")],
    )
    topic = forms.ChoiceField(label=_("topic"), required=False)
    webhooks = forms.BooleanField(
        label=_("send the imported events to the webhook endpoints"), required=False
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["topic"].choices = [("", "-")] + [
            (slug, slug) for slug in Topic.objects.values_list("slug", flat=True)
        ]

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        suffix = Path(upload.name).suffix.lower()
        if suffix not in (".csv", ".xlsx"):
            raise ValidationError(_("Give a .csv or .xlsx file."))
        return upload

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("preset") in ("mailchimp", "brevo") and not cleaned.get("topic"):
            self.add_error("topic", _("Choose the topic the list's subscribers consented to."))
        return cleaned


class ConfirmForm(forms.Form):
    sha256 = forms.RegexField(regex=r"^[0-9a-f]{64}$", widget=forms.HiddenInput)
    suffix = forms.ChoiceField(
        choices=[(".csv", ".csv"), (".xlsx", ".xlsx")], widget=forms.HiddenInput
    )
    filename = forms.CharField(max_length=255, widget=forms.HiddenInput)
    preset = forms.ChoiceField(choices=[(p, p) for p in imports.PRESETS], widget=forms.HiddenInput)
    topic = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)
    webhooks = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def path(self) -> Path:
        data = self.cleaned_data
        return import_dir() / f"{data['sha256']}{data['suffix']}"


PREVIEW_ROWS = 200


def import_page(request: HttpRequest) -> HttpResponse:
    """Upload a file: the dry run's preview (what each row would record, why a row is refused),
    then confirm to import it."""
    if not request.user.has_perm("consents.add_importrun"):
        raise PermissionDenied
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": _("Import contacts"),
        "runs": ImportRun.objects.all()[:10],
    }
    if request.method == "POST" and "confirm" in request.POST:
        return _confirm(request)
    form = UploadForm(request.POST or None, request.FILES or None)
    context["form"] = form
    if request.method != "POST":
        return render(request, "admin/consents/import.html", context)
    if not form.is_valid():
        return render(request, "admin/consents/import.html", context, status=400)
    upload = form.cleaned_data["file"]
    suffix = Path(upload.name).suffix.lower()
    stored = imports.import_store(chunks=upload.chunks(), filename=upload.name)
    rows: list[imports.RowPlan] = []

    def keep(plan: imports.RowPlan) -> None:
        if len(rows) < PREVIEW_ROWS:
            rows.append(plan)

    try:
        summary = imports.run(
            stored,
            preset=form.cleaned_data["preset"],
            topic=form.cleaned_data["topic"],
            actor=f"staff:{request.user.get_username()}",
            dry_run=True,
            on_row=keep,
        )
    except imports.ImportError_ as exc:
        stored.unlink(missing_ok=True)
        form.add_error("file", str(exc))
        return render(request, "admin/consents/import.html", context, status=400)
    context.update(
        preview=rows,
        counts=sorted(summary.counts.items()),
        confirm=ConfirmForm(
            initial={
                "sha256": stored.stem,
                "suffix": suffix,
                "filename": Path(upload.name).name[:255],
                "preset": form.cleaned_data["preset"],
                "topic": form.cleaned_data["topic"],
                "webhooks": form.cleaned_data["webhooks"],
            }
        ),
        truncated=summary.rows > PREVIEW_ROWS,
    )
    return render(request, "admin/consents/import.html", context)


def _confirm(request: HttpRequest) -> HttpResponse:
    form = ConfirmForm(request.POST)
    if not form.is_valid() or not form.path().is_file():
        messages.error(request, gettext("This upload is no longer here: upload the file again."))
        return HttpResponseRedirect(reverse("admin:consents_import"))
    data = form.cleaned_data
    with transaction.atomic():
        run = imports.import_queue(
            path=form.path(),
            preset=data["preset"],
            topic=data["topic"],
            actor=f"staff:{request.user.get_username()}",
            webhooks=data["webhooks"],
            filename=data["filename"],
        )
        access_log(user=request.user, action="import", contact=None, detail=f"import #{run.pk}")
    messages.success(request, gettext("The import was started; its record shows how it went."))
    return HttpResponseRedirect(reverse("admin:consents_importrun_change", args=[run.pk]))


@admin.register(ImportRun)
class ImportRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "preset", "topic", "filename", "status", "rows", "actor")
    list_filter = ("status", "preset")
    fields = (
        "preset", "topic", "filename", "file_sha256", "status", "actor", "webhooks",
        "created_at", "finished_at", "rows", "counts_table", "issues", "error", "unproven",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description=_("counts"))
    def counts_table(self, obj: ImportRun) -> str:
        if not obj.counts:
            return "-"
        items = format_html_join("", "<li>{}: {}</li>", sorted(obj.counts.items()))
        return format_html("<ul>{}</ul>", items)

    @admin.display(description=_("refused, conflicting and unproven rows"))
    def issues(self, obj: ImportRun) -> str:
        if not obj.report:
            return "-"
        items = format_html_join(
            "",
            "<li>{} {}: {} {}</li>",
            ((gettext("row"), i["row"], i["outcome"], i["reason"]) for i in obj.report[:100]),
        )
        return format_html("<ul>{}</ul>", items)

    @admin.display(description=_("opt-ins without proof"))
    def unproven(self, obj: ImportRun) -> str:
        n = obj.counts.get("unproven", 0)
        if not n:
            return "0"
        url = reverse("admin:consents_importrun_unproven", args=[obj.pk])
        return format_html(
            '{} <a href="{}">{}</a>',
            n,
            url,
            gettext("Download them (CSV) for a repermission campaign"),
        )

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(self.unproven_view)
        return [
            path("<int:pk>/unproven.csv", view, name="consents_importrun_unproven"),
        ] + super().get_urls()

    def unproven_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm("consents.export_contact"):
            raise PermissionDenied
        run = get_object_or_404(ImportRun, pk=pk)
        access_log(
            user=request.user, action="export_unproven", contact=None, detail=f"import #{pk}"
        )
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{pk}-unproven.csv"'
        writer = csv.writer(response)
        writer.writerow(["row", "contact", "email"])
        writer.writerows(imports.unproven_contacts(run))
        return response


def failing_endpoints() -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(failing_since__isnull=False, active=True)
