"""The compliance officer's admin: find a person, read their ledger and current state.

The ledger (``Event``, ``Evidence``) and the projections are read-only for everyone, superusers
included: the permission methods say no, so the admin offers no form and refuses any POST. Writes
that the admin does allow (topics, notices, catalog) go through ``consents.services``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Model, Q, QuerySet
from django.forms import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils import timezone, translation
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from consents import anchors, clock, explain, ledger, links, notices, proof, rules, services
from consents.models import (
    AccessLog,
    CatalogFact,
    Category,
    ChannelState,
    ConsentState,
    Contact,
    ContactFacts,
    EnrolmentLink,
    Erasure,
    Event,
    Evidence,
    LedgerAnchor,
    Notice,
    Outbox,
    ReconfirmCampaign,
    Store,
    Suppression,
    Topic,
)
from consents.vocab import CHANNELS, PURPOSES, TOPIC_PURPOSES, Channel, Purpose


def method_decorator_post(fn: Any) -> Any:
    from django.utils.decorators import method_decorator

    return method_decorator(require_POST)(fn)


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
        "short_hash",
    )
    readonly_fields = fields
    show_change_link = True

    @admin.display(description=_("hash"))
    def short_hash(self, obj: Event) -> str:
        """The first characters; the whole value on demand (the page fits a 1280 px screen)."""
        return format_html(
            '<details class="hash"><summary><code>{}…</code></summary><code>{}</code></details>',
            obj.hash[:10],
            obj.hash,
        )

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


class UTCDateTimeField(forms.DateTimeField):
    """A date and time typed as UTC, whatever the site's time zone: Django reads a naive value
    in the current time zone (Europe/Paris), an hour or two off the UTC the label promises."""

    def to_python(self, value: Any) -> datetime | None:
        with timezone.override(UTC):
            return super().to_python(value)


DECISION_YEARS = (1970, 2100)


class DecisionForm(forms.Form):
    """The decision panel: a message, an instant, and ``decide``'s answer for this person."""

    channel = forms.ChoiceField(label=_("channel"), choices=Channel.choices)
    purpose = forms.ChoiceField(
        label=_("purpose"), choices=[(p, Purpose(p).label) for p in PURPOSES]
    )
    topic = forms.ChoiceField(label=_("topic"), required=False)
    category = forms.CharField(label=_("category"), required=False, max_length=64)
    product = forms.CharField(label=_("product"), required=False, max_length=128)
    professions = forms.CharField(
        label=_("professions"), required=False, help_text=_("Comma-separated.")
    )
    automated = forms.BooleanField(label=_("automated call"), required=False)
    contains_promotion = forms.BooleanField(label=_("contains a promotion"), required=False)
    at = UTCDateTimeField(
        label=_("as of (UTC)"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text=_("Empty: now."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, prefix="decide", **kwargs)
        self.fields["topic"].choices = [("", "-")] + [
            (topic.slug, f"{topic.slug} ({topic.name})") for topic in Topic.objects.all()
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        purpose = cleaned.get("purpose")
        # decide() answers a marketing message only about a topic (RULES.md: consent is given
        # per topic): the panel asks for one rather than failing.
        marketing = purpose not in (None, Purpose.SERVICE, Purpose.REPERMISSION) or (
            purpose == Purpose.SERVICE and cleaned.get("contains_promotion")
        )
        if marketing and not cleaned.get("topic") and "topic" not in self.errors:
            self.add_error("topic", _("Choose the topic of this marketing message."))
        if cleaned.get("automated") and cleaned.get("channel") not in (None, Channel.PHONE):
            # RULES.md: only a phone call can be automated.
            self.add_error("automated", _("Only a phone call can be automated."))
        at = cleaned.get("at")
        if at is not None and not DECISION_YEARS[0] <= at.year <= DECISION_YEARS[1]:
            # Retention and link lifetimes are added to this instant: keep clear of year 9999.
            self.add_error(
                "at",
                _("Choose an instant between the years %(first)s and %(last)s.")
                % {"first": DECISION_YEARS[0], "last": DECISION_YEARS[1]},
            )
        return cleaned

    def message(self) -> rules.Message:
        data = self.cleaned_data
        return rules.Message(
            channel=data["channel"],
            purpose=data["purpose"],
            topic=data["topic"] or None,
            category=data["category"] or None,
            product=data["product"] or None,
            professions=tuple(p.strip() for p in data["professions"].split(",") if p.strip()),
            contains_promotion=data["contains_promotion"],
            automated=data["automated"],
        )

    def instant(self) -> datetime:
        at = self.cleaned_data.get("at")
        return clock.now() if at is None else at


class EraseForm(forms.Form):
    """Who is erased is typed again (their email, else their phone): never the wrong person."""

    confirm = forms.CharField(
        label=_("Type the person's email address (or phone number) to confirm"),
        max_length=254,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    # Kept after the erasure, in the erasure record and the access log: the page says so.
    reason = forms.CharField(
        label=_("reason"),
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_(
            "Kept after the erasure, in the erasure record and the access log. Write a "
            "reference (e.g. the request of 12 March, ticket #1234), never personal data: no "
            "name, address, phone number or what the person wrote."
        ),
    )

    def __init__(self, *args: Any, contact: Contact, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.contact = contact

    def clean_confirm(self) -> str:
        typed = self.cleaned_data["confirm"].strip()
        email, phone = self.contact.email or "", self.contact.phone or ""
        same = (email and typed.casefold() == email.casefold()) or (
            phone and "".join(typed.split()) in (phone, _national(phone))
        )
        if not same:
            raise ValidationError(
                _("This is not the email address or phone number of the person shown above."),
                code="mismatch",
            )
        return typed


def _national(phone: str) -> str:
    """+33612345678 -> 0612345678: the way the officer may read it out."""
    return "0" + phone[3:] if phone.startswith("+33") else phone


class RectifyForm(forms.Form):
    email = forms.CharField(label=_("new email address"), max_length=254)

    def clean_email(self) -> str:
        try:
            return services.normalize_email(self.cleaned_data["email"])
        except ValidationError as exc:
            # The service names the field in its error; a form's clean_<field> may not.
            raise ValidationError(_("Enter a valid email address."), code="invalid") from exc


def _today_summary(grid: list[Any]) -> list[dict[str, Any]]:
    """ "May we write to this person today?", per channel, in words: the topics allowed and why,
    else why not."""
    summary = []
    for channel in CHANNELS:
        rows = [r for r in grid if r.channel == channel]
        if not rows:
            continue
        allowed = [r for r in rows if r.decision.allowed]
        if allowed:
            text = ", ".join(
                f"{r.topic.name} ({explain.short_reason(r.decision.reason)})" for r in allowed
            )
        else:
            reasons = dict.fromkeys(explain.short_reason(r.decision.reason) for r in rows)
            text = "; ".join(reasons)
        summary.append(
            {
                "channel": Channel(channel).label,
                "allowed": bool(allowed),
                "text": text,
            }
        )
    return summary


@admin.register(Contact)
class ContactAdmin(ContactSearchMixin, admin.ModelAdmin):
    change_form_template = "admin/consents/contact/change_form.html"
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
                '<strong>{}</strong> <a href="{}">{}</a>',
                _("BROKEN at event #%(seq)s: %(problem)s.")
                % {"seq": broken["seq"], "problem": broken["problem"]},
                events_url,
                _("All events"),
            )
        intact = ngettext(
            "Intact: %(n)s event verified.", "Intact: %(n)s events verified.", checked
        ) % {"n": checked}
        return format_html('{} <a href="{}">{}</a>', intact, events_url, _("All events"))

    # --- The compliance officer's tools on a person ---------------------------------------------

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        contact = self.get_object(request, object_id)
        if contact is None or not self.has_view_or_change_permission(request, contact):
            return super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET":
            proof.access_log(user=request.user, action="view_contact", contact=contact)
        events, facts = proof.history(contact)  # once, for the grid and the panel
        now = clock.now()
        form = DecisionForm(request.GET if "decide-channel" in request.GET else None)
        decision = None
        explanation = None
        words = explain.Explainer(events)
        if form.is_bound and form.is_valid():
            try:
                decision = proof.decide_for(contact, facts, form.message(), form.instant())
            except ValueError as exc:
                # A question the rules cannot answer as asked: said next to the form.
                form.add_error(None, str(exc))
            else:
                explanation = words.explain(decision, form.message())
        user = request.user
        grid = proof.state_grid(contact, facts, now)
        context = {
            **(extra_context or {}),
            "grid": grid,
            "grid_words": [
                {"row": row, "why": explain.short_reason(row.decision.reason)} for row in grid
            ],
            "summary": _today_summary(grid),
            "decision_form": form,
            "decision": decision,
            "explanation": explanation,
            "decision_facts": sorted((decision.facts if decision else {}).items()),
            "erasure": Erasure.objects.filter(contact=contact).first(),
            "can_export": user.has_perm("consents.export_contact"),
            "can_erase": user.has_perm("consents.erase_contact"),
            "can_rectify": user.has_perm("consents.rectify_contact"),
        }
        response = super().change_view(request, object_id, form_url, context)
        if form.is_bound and form.errors:
            response.status_code = 400  # the page, with the panel's question explained
        return response

    def get_urls(self) -> list:
        def view(fn: Any) -> Any:
            return self.admin_site.admin_view(fn)

        urls = [
            path("<int:pk>/proof.json", view(self.proof_view), name="consents_contact_proof"),
            path("<int:pk>/receipt/", view(self.receipt_view), name="consents_contact_receipt"),
            path("<int:pk>/access.json", view(self.access_view), name="consents_contact_access"),
            path("<int:pk>/verify/", view(self.verify_view), name="consents_contact_verify"),
            path("<int:pk>/erase/", view(self.erase_view), name="consents_contact_erase"),
            path("<int:pk>/rectify/", view(self.rectify_view), name="consents_contact_rectify"),
        ]
        return urls + super().get_urls()

    def _contact(self, request: HttpRequest, pk: int, perm: str) -> Contact:
        if not request.user.has_perm(perm):
            raise PermissionDenied
        return get_object_or_404(Contact, pk=pk)

    def _back(self, contact: Contact) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:consents_contact_change", args=[contact.pk]))

    def _form_page(
        self,
        request: HttpRequest,
        name: str,
        title: Any,
        contact: Contact,
        form: Any,
        **extra: Any,
    ) -> HttpResponse:
        """One of a contact's action forms (erase, rectify), in the admin's frame."""
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "contact": contact,
            "form": form,
            "opts": self.model._meta,
            **extra,
        }
        return render(request, f"admin/consents/contact/{name}.html", context)

    def proof_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        contact = self._contact(request, pk, "consents.export_contact")
        proof.access_log(user=request.user, action="export_proof", contact=contact)
        return proof.json_file(proof.proof_export(contact), f"proof-{contact.public_id}.json")

    def access_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        contact = self._contact(request, pk, "consents.export_contact")
        proof.access_log(user=request.user, action="export_access", contact=contact)
        data = proof.access_export(contact, clock.now())
        return proof.json_file(data, f"data-{contact.public_id}.json")

    def receipt_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        contact = self._contact(request, pk, "consents.export_contact")
        proof.access_log(user=request.user, action="export_receipt", contact=contact)
        context = {"contact": contact, "receipts": proof.receipts(contact), "now": clock.now()}
        # The receipt is the person's, in their language (its <html lang> says so), whatever
        # the officer's; render() evaluates the translations, so the override must cover it.
        with translation.override(contact.locale or settings.LANGUAGE_CODE):
            return render(request, "consents/receipt.html", context)

    @method_decorator_post
    def verify_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        contact = self._contact(request, pk, "consents.view_contact")
        checked, broken = ledger.verify_range(contact.pk, contact.pk + 1)
        proof.access_log(
            user=request.user,
            action="verify",
            contact=contact,
            detail=f"broken at #{broken['seq']}" if broken else f"intact, {checked} events",
        )
        if broken:
            messages.error(
                request,
                _("Chain BROKEN at event #%(seq)s: %(problem)s") % broken,
            )
        else:
            messages.success(request, _("Chain intact: %(n)s events verified.") % {"n": checked})
        return self._back(contact)

    def erase_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        contact = self._contact(request, pk, "consents.erase_contact")
        form = EraseForm(request.POST or None, contact=contact)
        if request.method == "POST" and form.is_valid():
            reason = form.cleaned_data["reason"]
            try:
                with transaction.atomic():
                    services.contact_erase(
                        contact=contact, reason=reason, actor=f"staff:{request.user.get_username()}"
                    )
                    proof.access_log(
                        user=request.user, action="erase", contact=contact, detail=reason
                    )
            except ValidationError as exc:
                messages.error(request, "; ".join(exc.messages))
            else:
                messages.success(request, _("The contact's personal data was erased."))
            return self._back(contact)
        title = _("Erase this contact's personal data")
        response = self._form_page(
            request,
            "erase",
            title,
            contact,
            form,
            events=Event.objects.filter(contact=contact).count(),
        )
        if form.is_bound:
            response.status_code = 400
        return response

    def rectify_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        from consents.outbox import email_enqueue

        contact = self._contact(request, pk, "consents.rectify_contact")
        form = RectifyForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            new_email = form.cleaned_data["email"]
            if Contact.objects.filter(email__iexact=new_email).exclude(pk=contact.pk).exists():
                form.add_error("email", _("Another contact has this address."))
            else:
                with transaction.atomic():
                    # A service email to the new address: nothing changes until its owner confirms.
                    email_enqueue(
                        to=new_email,
                        template="email-confirm",
                        context={},
                        links={"confirm_url": links.intent("email_change", e=new_email)},
                        language=contact.locale,
                        contact=contact,
                        is_service=True,
                    )
                    proof.access_log(
                        user=request.user,
                        action="rectify_request",
                        contact=contact,
                        detail="confirmation sent to the new email address",
                    )
                messages.success(
                    request,
                    _(
                        "A confirmation link was sent to the new address; "
                        "nothing changes until it is used."
                    ),
                )
                return self._back(contact)
        title = _("Change this contact's email address")
        return self._form_page(request, "rectify", title, contact, form)


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
    """Drafts are written and edited here; publishing (a button) fixes the wording for good."""

    change_form_template = "admin/consents/notice/change_form.html"
    list_display = ("__str__", "topic", "language", "version", "status", "published_at", "sha256")
    list_filter = ("language", "topic")
    list_select_related = ("topic",)
    search_fields = ("topic__slug", "text")

    @admin.display(description=_("status"))
    def status(self, obj: Notice) -> str:
        return _("published") if obj.is_published else _("draft")

    def get_fields(self, request: HttpRequest, obj: Notice | None = None) -> tuple:
        if obj is None:
            return ("topic", "language", "text")
        return ("topic", "language", "version", "text", "sha256", "published_at", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Notice | None = None) -> tuple:
        if obj is None:
            return ()
        if obj.is_published:
            return self.get_fields(request, obj)
        return ("topic", "language", "version", "sha256", "published_at", "created_at")

    def has_change_permission(self, request: HttpRequest, obj: Notice | None = None) -> bool:
        if obj is not None and obj.is_published:
            return False  # the wording people were shown never changes: publish a new version
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # events point at the version they were collected under

    def save_model(self, request: HttpRequest, obj: Notice, form: forms.Form, change: bool) -> None:
        if change:
            saved = services.notice_draft_update(notice=obj, text=form.cleaned_data["text"])
        else:
            saved = services.notice_draft_create(
                topic=form.cleaned_data["topic"],
                language=form.cleaned_data["language"],
                text=form.cleaned_data["text"],
            )
        for field in Notice._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))

    def get_urls(self) -> list:
        publish = self.admin_site.admin_view(self.publish_view)
        reconfirm = self.admin_site.admin_view(self.reconfirm_view)
        return [
            path("<int:pk>/publish/", publish, name="consents_notice_publish"),
            path("<int:pk>/reconfirm/", reconfirm, name="consents_notice_reconfirm"),
        ] + super().get_urls()

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        notice = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if notice is not None:
            older = notices.older_consents(notice)
            context["older_consents"] = older.count() if notice.topic_id else None
            context["older_by_email"] = older.filter(channel=Channel.EMAIL).count()
            context["campaigns"] = notice.campaigns.all()
            context["can_publish"] = not notice.is_published and request.user.has_perm(
                "consents.change_notice"
            )
        return super().change_view(request, object_id, form_url, context)

    @method_decorator_post
    def publish_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm("consents.change_notice"):
            raise PermissionDenied
        notice = get_object_or_404(Notice, pk=pk)
        try:
            published = services.notice_draft_publish(notice=notice)
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
        else:
            messages.success(
                request, _("Published; its hash is %(sha)s.") % {"sha": published.sha256}
            )
        return HttpResponseRedirect(reverse("admin:consents_notice_change", args=[pk]))

    @method_decorator_post
    def reconfirm_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm("consents.change_notice"):
            raise PermissionDenied
        notice = get_object_or_404(Notice, pk=pk)
        try:
            notices.campaign_start(notice=notice, actor=f"staff:{request.user.get_username()}")
        except ValueError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                _("Re-confirmation started: the emails leave in batches, through the outbox."),
            )
        return HttpResponseRedirect(reverse("admin:consents_notice_change", args=[pk]))


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("slug", "family", "name", "name_en")
    list_filter = ("family",)
    search_fields = ("slug", "family", "name", "name_en")

    def get_readonly_fields(self, request: HttpRequest, obj: Category | None = None) -> tuple:
        return ("slug",) if obj is not None else ()  # purchases in the ledger name it by slug

    def save_model(
        self, request: HttpRequest, obj: Category, form: forms.Form, change: bool
    ) -> None:
        saved = services.category_set(
            slug=obj.slug, family=obj.family, name=obj.name, name_en=obj.name_en
        )
        obj.pk = saved.pk


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ("code", "name")
    search_fields = ("code", "name")


# --- Compliance records: read-only for everyone -------------------------------------------------


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
        proof.access_log(user=request.user, action="export_anchors", contact=None)
        return proof.json_file(anchors.anchors_export(), "ledger-anchors.json")


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


@admin.register(ReconfirmCampaign)
class ReconfirmCampaignAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("notice", "started_at", "started_by", "finished_at", "asked", "confirmed")
    list_select_related = ("notice__topic",)

    @admin.display(description=_("asked"))
    def asked(self, obj: ReconfirmCampaign) -> int:
        return obj.requests.count()

    @admin.display(description=_("confirmed"))
    def confirmed(self, obj: ReconfirmCampaign) -> int:
        return obj.requests.filter(confirmed_at__isnull=False).count()


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
            proof.access_log(
                user=request.user,
                action="view_outbox",
                contact=row.contact,
                detail=f"outbox #{row.pk} ({row.template})",
            )
        return super().change_view(request, object_id, form_url, extra_context)


# --- Staff accounts: the one-time link that enrols a new account's second factor ----------------


@admin.register(EnrolmentLink)
class EnrolmentLinkAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Which accounts were sent an enrolment link, by whom, and whether it was used (the links
    themselves are kept nowhere)."""

    list_display = ("user", "created_by", "created_at", "expires_at", "used_at")
    list_select_related = ("user", "created_by")
    fields = ("user", "created_by", "created_at", "expires_at", "used_at")
    search_fields = ("user__username",)


class StaffUserAdmin(UserAdmin):
    """Django's user admin, plus the action that makes second-factor enrolment links."""

    actions = ["enrolment_links"]

    @admin.action(description=_("Create second-factor enrolment links"), permissions=["change"])
    def enrolment_links(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        from consents import twofactor

        links, refused = [], []
        for user in queryset.order_by("username"):
            try:
                token = twofactor.enrolment_link_create(user=user, created_by=request.user)
            except ValidationError as exc:
                refused.append((user.get_username(), " ".join(exc.messages)))
                continue
            links.append(
                {
                    "username": user.get_username(),
                    "url": request.build_absolute_uri(twofactor.enrolment_link_path(token)),
                    "expires_at": clock.now() + settings.ADMIN_ENROL_LINK_TTL,
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Second-factor enrolment links"),
            "links": links,
            "refused": refused,
        }
        # Rendered once, in this answer to the POST: the links are kept nowhere.
        response = render(request, "admin/otp_enrol_links.html", context)
        response["Cache-Control"] = "no-store"
        return response


admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)

# Webhook endpoints, their deliveries and imports: registered with the same site.
from consents import admin_integrations  # noqa: E402, F401
