"""The compliance officer's page on a person: find them, read their ledger and current state,
ask the rules about a message, and act on their requests (exports, erasure, a new email address).

The ledger and the projections shown here are read-only for everyone, superusers included (the
inlines offer no form); the few details the admin may change go through ``consents.services``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Model, QuerySet
from django.forms import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils import translation
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from consents import clock, explain, http, labels, ledger, rules, services
from consents.admin.common import (
    ContactSearchMixin,
    ReadOnlyAdminMixin,
    UTCDateTimeField,
    method_decorator_post,
)
from consents.models import (
    CatalogFact,
    ChannelState,
    ConsentState,
    Contact,
    ContactFacts,
    Erasure,
    Event,
    Topic,
)
from consents.selectors import proof
from consents.vocab import CHANNELS, PURPOSES, Channel, Purpose

# --- The ledger and current state, read-only inlines ---------------------------------------------


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


# --- The decision panel and the officer's forms --------------------------------------------------


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


# --- The page ------------------------------------------------------------------------------------


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
                "channel": labels.channel_name(channel),
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
            services.access_log(user=request.user, action="view_contact", contact=contact)
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
        services.access_log(user=request.user, action="export_proof", contact=contact)
        return http.json_file(proof.proof_export(contact), f"proof-{contact.public_id}.json")

    def access_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        contact = self._contact(request, pk, "consents.export_contact")
        services.access_log(user=request.user, action="export_access", contact=contact)
        data = proof.access_export(contact, clock.now())
        return http.json_file(data, f"data-{contact.public_id}.json")

    def receipt_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        contact = self._contact(request, pk, "consents.export_contact")
        services.access_log(user=request.user, action="export_receipt", contact=contact)
        context = {"contact": contact, "receipts": proof.receipts(contact), "now": clock.now()}
        # The receipt is the person's, in their language (its <html lang> says so), whatever
        # the officer's; render() evaluates the translations, so the override must cover it.
        with translation.override(contact.locale or settings.LANGUAGE_CODE):
            return render(request, "consents/receipt.html", context)

    @method_decorator_post
    def verify_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        contact = self._contact(request, pk, "consents.view_contact")
        checked, broken = ledger.verify_range(contact.pk, contact.pk + 1)
        services.access_log(
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
                    services.access_log(
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
        contact = self._contact(request, pk, "consents.rectify_contact")
        form = RectifyForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.email_change_request(
                    contact=contact, new_email=form.cleaned_data["email"], user=request.user
                )
            except ValidationError as exc:
                form.add_error(None, exc)  # on the field the service names
            else:
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
