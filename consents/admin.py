"""The compliance officer's admin: find a person, read their ledger and current state.

The ledger (``Event``, ``Evidence``) and the projections are read-only for everyone, superusers
included: the permission methods say no, so the admin offers no form and refuses any POST. Writes
that the admin does allow (topics, notices, catalog) go through ``consents.services``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Model, Q, QuerySet
from django.forms import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from consents import ledger, services
from consents.models import (
    CatalogFact,
    Category,
    ChannelState,
    ConsentState,
    Contact,
    ContactFacts,
    Event,
    Evidence,
    Notice,
    Store,
    Topic,
)
from consents.vocab import TOPIC_PURPOSES, Channel, Purpose

admin.site.site_header = _("Assent: consent ledger")
admin.site.site_title = _("Assent admin")
admin.site.index_title = _("Compliance")

PUBLIC_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
SEARCH_HELP = _("An email address, a phone number (+33… or 06…), or a contact's public id.")


def contact_lookup(term: str, prefix: str = "") -> Q | None:
    """Exact, indexed match on what services store; None when ``term`` is no address or id.

    Emails are stored trimmed with the domain lower-cased, phones in E.164, so the term is
    normalised the same way and compared with ``=``: a contains-search would scan every row.
    """
    term = term.strip()
    if not term:
        return None
    if "@" in term:
        try:
            email = services.normalize_email(term)
        except ValidationError:
            return None
        if Contact.objects.filter(email=email).exists():
            return Q(**{f"{prefix}email": email})
        # The local part is stored as the person typed it; the officer may not know its case.
        return Q(**{f"{prefix}email__iexact": email})
    if PUBLIC_ID.match(term):
        return Q(**{f"{prefix}public_id": term})
    try:
        return Q(**{f"{prefix}phone": services.normalize_phone(term)})
    except ValidationError:
        return None


class ReadOnlyAdminMixin:
    """List and view only, for everyone: no add, no change, no delete (and so no actions)."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ContactSearchMixin:
    """Search the rows of a contact by its email, phone or public id."""

    contact_prefix = "contact__"
    search_fields: tuple[str, ...] = (
        "=contact__public_id",
        "contact__email",
        "contact__phone",
    )
    search_help_text = SEARCH_HELP

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        q = contact_lookup(search_term, self.contact_prefix)
        if q is not None:
            return queryset.filter(q), False
        return super().get_search_results(request, queryset, search_term)  # type: ignore[misc]


# --- The contact's page: ledger and current state, read-only ------------------------------------


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False


class LatestEventsFormSet(BaseInlineFormSet):
    """Only the latest events: a contact with thousands of clicks must still open quickly."""

    limit = 200

    def get_queryset(self) -> QuerySet:
        if not hasattr(self, "_queryset"):
            self._queryset = super().get_queryset()[: self.limit]
        return self._queryset


class EventInline(ReadOnlyInline):
    model = Event
    formset = LatestEventsFormSet
    verbose_name_plural = _("Ledger (newest first; the latest 200 events)")
    ordering = ("-seq",)
    fields = (
        "seq",
        "type",
        "topic",
        "channel",
        "occurred_at",
        "method",
        "actor",
        "collection_point",
        "store",
        "notice",
        "proof",
        "hash",
    )
    readonly_fields = fields
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("store", "notice__topic")


class ConsentStateInline(ReadOnlyInline):
    model = ConsentState
    verbose_name_plural = _("Current consent per topic and channel")
    ordering = ("topic", "channel")
    fields = readonly_fields = ("topic", "channel", "status", "since", "frequency")


class ChannelStateInline(ReadOnlyInline):
    model = ChannelState
    verbose_name_plural = _("Current state per channel")
    ordering = ("channel",)
    fields = readonly_fields = (
        "channel",
        "opted_out",
        "pause_until",
        "repermission_opted_out",
        "has_valid_consent",
    )


class ContactFactsInline(ReadOnlyInline):
    model = ContactFacts
    verbose_name_plural = _("Facts the rules use")
    fields = readonly_fields = (
        "is_customer",
        "retention_anchor",
        "expires_at",
        "undeliverable_email",
        "generic_email",
        "repermission_asked",
        "callback_until",
        "last_seq",
    )


class CatalogFactInline(ReadOnlyInline):
    model = CatalogFact
    verbose_name_plural = _("Purchases and contracts")
    ordering = ("kind", "category", "product")
    fields = readonly_fields = ("kind", "category", "product", "contract", "active")


@admin.register(Contact)
class ContactAdmin(ContactSearchMixin, admin.ModelAdmin):
    contact_prefix = ""
    search_fields = ("=public_id", "email", "phone")
    list_display = ("__str__", "phone", "first_name", "kind", "locale", "is_customer", "created_at")
    list_filter = ("kind", "locale")
    list_select_related = ("facts",)
    list_per_page = 50
    show_full_result_count = False
    sortable_by = ("email", "phone")
    # Every field the rules read (addresses, kind, collection) stays read-only here: changing one
    # must go through a service that records it in the ledger and refreshes the projections.
    fields = (
        "public_id",
        "email",
        "phone",
        "first_name",
        "locale",
        "kind",
        "profession",
        "postal_address",
        "push_token",
        "collected_at",
        "informed_at_collection",
        "link_version",
        "created_at",
        "chain",
    )
    readonly_fields = tuple(f for f in fields if f not in ("first_name", "locale"))
    inlines = (
        ContactFactsInline,
        ConsentStateInline,
        ChannelStateInline,
        CatalogFactInline,
        EventInline,
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Contacts come from forms, the store, the API: services.contact_create, not this admin.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # erasure is a data-subject request with its own log, not a delete button

    def save_model(
        self, request: HttpRequest, obj: Contact, form: forms.Form, change: bool
    ) -> None:
        services.contact_update_details(
            contact=obj,
            first_name=form.cleaned_data["first_name"],
            locale=form.cleaned_data["locale"],
        )

    @admin.display(boolean=True, description=_("customer"))
    def is_customer(self, obj: Contact) -> bool | None:
        facts = getattr(obj, "facts", None)
        return facts.is_customer if facts is not None else None

    @admin.display(description=_("hash chain"))
    def chain(self, obj: Contact) -> str:
        checked, broken = ledger.verify_range(obj.pk, obj.pk + 1)
        events_url = reverse("admin:consents_event_changelist") + f"?contact__id__exact={obj.pk}"
        if broken:
            return format_html(
                '<strong>BROKEN</strong> at event #{}: {}. <a href="{}">All events</a>',
                broken["seq"],
                broken["problem"],
                events_url,
            )
        return format_html(
            'Intact: {} events verified. <a href="{}">All events</a>', checked, events_url
        )


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
    list_select_related = ("event__contact",)
    list_per_page = 50
    show_full_result_count = False
    ordering = ("-pk",)
    sortable_by = ()

    @admin.display(description=_("contact"))
    def contact(self, obj: Evidence) -> Contact:
        return obj.event.contact


# --- Projections: derived from the ledger, never edited -----------------------------------------


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


# --- What superusers manage: topics, notices, catalog, stores -----------------------------------


class TopicForm(forms.ModelForm):
    purpose = forms.ChoiceField(choices=[(p, Purpose(p).label) for p in TOPIC_PURPOSES])
    channels = forms.MultipleChoiceField(
        choices=Channel.choices, widget=forms.CheckboxSelectMultiple
    )
    frequencies = forms.CharField(
        required=False, help_text=_("Comma-separated, e.g. weekly, monthly.")
    )

    class Meta:
        model = Topic
        fields = (
            "slug",
            "name_fr",
            "name_en",
            "description_fr",
            "description_en",
            "purpose",
            "channels",
            "frequencies",
            "display_order",
            "active",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "frequencies" in self.fields and self.instance.pk:
            self.initial["frequencies"] = ", ".join(self.instance.frequencies)

    def clean_frequencies(self) -> list[str]:
        raw = self.cleaned_data.get("frequencies") or ""
        return list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    form = TopicForm
    list_display = ("slug", "name_fr", "name_en", "purpose", "channels", "active", "display_order")
    list_filter = ("purpose", "active")
    search_fields = ("slug", "name_fr", "name_en")

    def get_readonly_fields(self, request: HttpRequest, obj: Topic | None = None) -> tuple:
        # The ledger names topics by slug, and a consent was given for a purpose: neither may
        # change under existing events. Retire a topic with "active" instead.
        return ("slug", "purpose") if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # events reference the slug as text: no foreign key would protect them

    def save_model(self, request: HttpRequest, obj: Topic, form: forms.Form, change: bool) -> None:
        if change:
            obj.save()
            return
        data = form.cleaned_data
        created = services.topic_create(
            slug=data["slug"],
            purpose=data["purpose"],
            channels=data["channels"],
            name_fr=data["name_fr"],
            name_en=data["name_en"],
            description_fr=data.get("description_fr", ""),
            description_en=data.get("description_en", ""),
            frequencies=data["frequencies"],
            display_order=data.get("display_order") or 0,
            active=data.get("active", True),
        )
        obj.pk = created.pk


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin):
    list_display = ("__str__", "topic", "language", "version", "published_at", "sha256")
    list_filter = ("language", "topic")
    list_select_related = ("topic",)
    search_fields = ("topic__slug", "text")

    def get_fields(self, request: HttpRequest, obj: Notice | None = None) -> tuple:
        if obj is None:
            return ("topic", "language", "text")
        return ("topic", "language", "version", "text", "sha256", "published_at", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Notice | None = None) -> tuple:
        return () if obj is None else self.get_fields(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Notice | None = None) -> bool:
        if obj is not None and obj.is_published:
            return False  # the wording people were shown never changes: publish a new version
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # events point at the version they were collected under

    def save_model(self, request: HttpRequest, obj: Notice, form: forms.Form, change: bool) -> None:
        if change:
            obj.save()
            return
        published = services.notice_publish(
            topic=form.cleaned_data["topic"],
            language=form.cleaned_data["language"],
            text=form.cleaned_data["text"],
        )
        for field in Notice._meta.concrete_fields:
            setattr(obj, field.attname, getattr(published, field.attname))


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("slug", "family", "name")
    list_filter = ("family",)
    search_fields = ("slug", "family", "name")

    def get_readonly_fields(self, request: HttpRequest, obj: Category | None = None) -> tuple:
        return ("slug",) if obj is not None else ()  # purchases in the ledger name it by slug

    def save_model(
        self, request: HttpRequest, obj: Category, form: forms.Form, change: bool
    ) -> None:
        saved = services.category_set(slug=obj.slug, family=obj.family, name=obj.name)
        obj.pk = saved.pk


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ("code", "name")
    search_fields = ("code", "name")
