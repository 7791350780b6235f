from __future__ import annotations

import os

from celery import Celery

from config import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

broker.use()  # kombu's Redis transport, one client per pool (config/broker.py)
app = Celery("assent")
# Every CELERY_* Django setting configures Celery, the beat schedule included.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
