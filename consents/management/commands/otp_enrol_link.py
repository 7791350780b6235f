from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from consents.admin import twofactor


class Command(BaseCommand):
    help = (
        "Print a one-time link that lets an admin account set up its first second factor (the "
        "password alone cannot). Give it to the person privately: it works once, for that "
        "account logged in with its password, until it expires (ADMIN_ENROL_LINK_TTL_HOURS). "
        "Typically right after createsuperuser."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        user = User._default_manager.filter(**{User.USERNAME_FIELD: options["username"]}).first()
        if user is None:
            raise CommandError(f"No account is named {options['username']!r}.")
        try:
            token = twofactor.enrolment_link_create(user=user, created_by=None)
        except ValidationError as exc:
            raise CommandError(" ".join(str(m) for m in exc.messages)) from None
        hours = int(settings.ADMIN_ENROL_LINK_TTL.total_seconds() // 3600)
        self.stdout.write(f"{settings.SITE_URL}{twofactor.enrolment_link_path(token)}")
        self.stderr.write(
            f"One-time enrolment link for {user.get_username()}, valid {hours} hours. Open it, "
            "log in with the account's password, scan the QR code."
        )
