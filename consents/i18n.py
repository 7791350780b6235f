"""Model and field names in the admin, in the officer's language.

Django names a model and a field after its Python name ("created at", "consent state") unless
it is given a ``verbose_name``. Those names are wrapped here, once the models are loaded, in a
lazy translation: the admin shows them through the catalogs (``locale/``), in the language of
the request. The migrations do not change: they record the ``verbose_name`` the code gave.
"""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy


def _lazy(value: object) -> object:
    return value if isinstance(value, Promise) else gettext_lazy(str(value))


def translate_names(app_config: AppConfig) -> None:
    for model in app_config.get_models():
        meta = model._meta
        meta.verbose_name = _lazy(meta.verbose_name)
        meta.verbose_name_plural = _lazy(meta.verbose_name_plural)
        for field in meta.get_fields():
            if hasattr(field, "verbose_name") and field.verbose_name:
                field.verbose_name = _lazy(field.verbose_name)
