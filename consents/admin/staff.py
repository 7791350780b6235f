"""Staff accounts: Django's user admin, plus the one-time links that enrol a new account's
second factor (``consents.admin.twofactor``)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from consents import clock
from consents.admin import twofactor
from consents.admin.common import ReadOnlyAdminMixin
from consents.models import EnrolmentLink


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
