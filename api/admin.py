"""API keys in the admin: made with their scopes and networks, the key shown once, revoked."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from api import keys
from api.models import SCOPE_CHOICES, ApiKey


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("scopes"), choices=SCOPE_CHOICES, widget=forms.CheckboxSelectMultiple
    )
    allowed_networks = forms.CharField(
        label=_("allowed networks"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One IP network a line (e.g. 203.0.113.0/24). Empty: any address."),
    )

    class Meta:
        model = ApiKey
        fields = ("name", "scopes", "allowed_networks", "rate_per_minute")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["allowed_networks"] = "\n".join(self.instance.allowed_networks)

    def clean_allowed_networks(self) -> list[str]:
        lines = self.cleaned_data["allowed_networks"].split()
        try:
            return keys.check_networks(lines)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["allowed_networks"]) from exc


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ("name", "prefix", "scope_list", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    readonly_fields = ("prefix", "created_at", "created_by", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the access log names keys: revoke instead

    @admin.display(description=_("scopes"))
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.Form, change: bool) -> None:
        data = form.cleaned_data
        if change:
            obj.scopes = keys.check_scopes(data["scopes"])
            obj.save()
            return
        made, raw = keys.key_create(
            name=data["name"],
            scopes=data["scopes"],
            allowed_networks=data["allowed_networks"],
            rate_per_minute=data["rate_per_minute"],
            created_by=request.user,
        )
        request._api_key_raw = raw  # type: ignore[attr-defined]
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(made, field.attname))

    def response_add(self, request: HttpRequest, obj: ApiKey, *args: Any) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": _("The new API key"),
            "key": obj,
            "raw": request._api_key_raw,  # type: ignore[attr-defined]
            "opts": self.model._meta,
        }
        response = render(request, "admin/api/apikey/shown_once.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description=_("Revoke the selected keys (they stop working at once)"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            keys.key_revoke(key=key)
        messages.success(request, _("Revoked: %(n)d key(s).") % {"n": queryset.count()})
