"""French dates: Django's own, with the time as 14:05."""

from django.conf.locale.fr.formats import *  # noqa: F403

DATETIME_FORMAT = "j F Y, H:i"
