"""What officers and superusers manage: topics, notices (drafts, publishing, re-confirmation
campaigns), the product catalog and the stores. Writes go through ``consents.services``."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from consents import notices, services
from consents.admin.common import ReadOnlyAdminMixin, method_decorator_post
from consents.models import Category, Notice, ReconfirmCampaign, Store, Topic
from consents.vocab import TOPIC_PURPOSES, Channel, Purpose

# --- Topics --------------------------------------------------------------------------------------


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


# --- Notices and their re-confirmation campaigns -------------------------------------------------


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


# --- The catalog and the stores ------------------------------------------------------------------


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
