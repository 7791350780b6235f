"""What the admin's pages share: read-only model admins, the search for a contact, UTC fields."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from consents import services
from consents.models import Contact


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


class UTCDateTimeField(forms.DateTimeField):
    """A date and time typed as UTC, whatever the site's time zone: Django reads a naive value
    in the current time zone (Europe/Paris), an hour or two off the UTC the label promises."""

    def to_python(self, value: Any) -> datetime | None:
        with timezone.override(UTC):
            return super().to_python(value)
