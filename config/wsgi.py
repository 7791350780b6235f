from __future__ import annotations

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# What is loaded by now (Django, the apps, their modules and settings) lives as long as the
# process: moved out of the cycle collector's reach, whose full passes walked it all again (a
# twentieth of a request's CPU on the busiest pages; bench/README.md). Nothing is freed less:
# garbage made later is collected as before.
gc.collect()
gc.freeze()
