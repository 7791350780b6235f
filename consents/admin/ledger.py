"""The ledger's admin, read-only for everyone: events, their evidence, the projections derived
from them, and the compliance records (access log, erasures, anchors, suppression list).

The permission methods say no to every write, superusers included: the admin offers no form and
refuses any POST.
"""

from __future__ import annotations

import json

from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from consents import anchors, http, services
from consents.admin.common import ContactSearchMixin, ReadOnlyAdminMixin
from consents.models import (
    AccessLog,
    CatalogFact,
    ChannelState,
    ConsentState,
    Contact,
    ContactFacts,
    Erasure,
    Event,
    Evidence,
    LedgerAnchor,
    Suppression,
)

# --- Events and their evidence -------------------------------------------------------------------


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, ContactSearchMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "contact",
        "seq",
        "type",
        "topic",
        "channel",
        "occurred_at",
        "method",
        "actor",
        "store",
    )
    # Only filters on fields with choices: they cost no query, unlike a DISTINCT over the ledger.
    list_filter = ("type", "method")
    list_select_related = ("contact", "store")
    list_per_page = 50
    show_full_result_count = False
    ordering = ("-pk",)
    sortable_by = ()
    fields = (
        "contact",
        "seq",
        "type",
        "topic",
        "channel",
        "occurred_at",
        "recorded_at",
        "method",
        "actor",
        "collection_point",
        "store",
        "notice",
        "proof",
        "data_json",
        "evidence_digest",
        "evidence_summary",
        "prev_hash",
        "hash",
    )
    readonly_fields = ("data_json", "evidence_summary")

    @admin.display(description=_("data"))
    def data_json(self, obj: Event) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, ensure_ascii=False))

    @admin.display(description=_("evidence"))
    def evidence_summary(self, obj: Event) -> str:
        evidence = Evidence.objects.filter(event=obj).first()
        if evidence is None:
            return "-"
        if evidence.erased_at:
            return format_html("Erased on {}", evidence.erased_at)
        return format_html(
            "IP {} · {} · {}",
            evidence.ip_address or "-",
            evidence.user_agent or "-",
            json.dumps(evidence.details, ensure_ascii=False),
        )


@admin.register(Evidence)
class EvidenceAdmin(ReadOnlyAdminMixin, ContactSearchMixin, admin.ModelAdmin):
    contact_prefix = "event__contact__"
    search_fields = ("=event__contact__public_id", "event__contact__email")
    list_display = ("event", "contact", "ip_address", "user_agent", "erased_at")
    # The key of the event's evidence digest: of no use to read, and in the proof export.
    exclude = ("salt",)
    list_select_related = ("event__contact",)
    list_per_page = 50
    show_full_result_count = False
    ordering = ("-pk",)
    sortable_by = ()

    @admin.display(description=_("contact"))
    def contact(self, obj: Evidence) -> Contact:
        return obj.event.contact


# --- Projections: derived from the ledger, never edited ------------------------------------------


class ProjectionAdmin(ReadOnlyAdminMixin, ContactSearchMixin, admin.ModelAdmin):
    list_select_related = ("contact",)
    list_per_page = 50
    show_full_result_count = False


@admin.register(ContactFacts)
class ContactFactsAdmin(ProjectionAdmin):
    list_display = (
        "contact",
        "is_customer",
        "expires_at",
        "undeliverable_email",
        "generic_email",
        "repermission_asked",
        "last_seq",
    )
    list_filter = ("is_customer", "undeliverable_email")


@admin.register(ConsentState)
class ConsentStateAdmin(ProjectionAdmin):
    list_display = ("contact", "topic", "channel", "status", "since", "frequency")
    list_filter = ("status", "channel")


@admin.register(ChannelState)
class ChannelStateAdmin(ProjectionAdmin):
    list_display = (
        "contact",
        "channel",
        "opted_out",
        "pause_until",
        "repermission_opted_out",
        "has_valid_consent",
    )
    list_filter = ("channel", "opted_out")


@admin.register(CatalogFact)
class CatalogFactAdmin(ProjectionAdmin):
    list_display = ("contact", "kind", "category", "product", "contract", "active")
    list_filter = ("kind", "active")


# --- Compliance records: read-only for everyone --------------------------------------------------


@admin.register(AccessLog)
class AccessLogAdmin(ReadOnlyAdminMixin, ContactSearchMixin, admin.ModelAdmin):
    list_display = ("at", "username", "action", "contact", "detail")
    list_filter = ("action",)
    list_select_related = ("contact",)
    list_per_page = 100
    show_full_result_count = False
    search_fields = ("=contact__public_id", "username")


@admin.register(Erasure)
class ErasureAdmin(ReadOnlyAdminMixin, ContactSearchMixin, admin.ModelAdmin):
    list_display = ("erased_at", "contact", "actor", "reason", "suppressed")
    list_select_related = ("contact",)
    search_fields = ("=contact__public_id",)


@admin.register(LedgerAnchor)
class LedgerAnchorAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The signed digests of the chain heads, read-only; exported to be kept outside."""

    change_list_template = "admin/consents/ledgeranchor/change_list.html"
    list_display = ("id", "at", "chains", "events", "root", "key_id")
    list_per_page = 50
    show_full_result_count = False
    sortable_by = ()

    def get_urls(self) -> list:
        export = self.admin_site.admin_view(self.export_view)
        return [
            path("export.json", export, name="consents_ledgeranchor_export"),
            *super().get_urls(),
        ]

    def export_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        services.access_log(user=request.user, action="export_anchors", contact=None)
        return http.json_file(anchors.anchors_export(), "ledger-anchors.json")


@admin.register(Suppression)
class SuppressionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("digest", "kind", "created_at", "reason")
    list_filter = ("kind",)
    search_fields = ("=digest",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        # An officer types an address; the list only knows its keyed hash.
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            kind = "email" if "@" in term else "phone"
            return queryset.filter(digest=services.suppression_digest(kind, term)), False
        except ValidationError:
            return queryset.none(), False
