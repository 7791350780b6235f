from __future__ import annotations

import gc
import os

from django.core.wsgi import get_wsgi_application

from config.handlers import MachineHandler, by_path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Every page through settings.MIDDLEWARE; the email service's webhooks through the few a
# machine's request needs (config.handlers).
people = get_wsgi_application()

machines = MachineHandler()
application = by_path(people, machines)

# What is loaded by now (Django, the apps, their modules and settings) lives as long as the
# process: moved out of the cycle collector's reach, whose full passes walked it all again (a
# twentieth of a request's CPU on the busiest pages; bench/README.md). Nothing is freed less:
# garbage made later is collected as before.
gc.collect()
gc.freeze()
