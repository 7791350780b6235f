"""The Jinja2 environment of the pages drawn with Jinja2 (``templates/jinja2/``).

Only the hot part of the preference page is drawn here (its boxes and the rest of its body); the
shared layout stays a Django template (``templates/preferences/preferences.html``). The output is
the one Django's template language gives, byte for byte:

- autoescape on, with Django's entities for the quotes (``&#x27;``, ``&quot;``: ``Template``);
  what has ``__html__`` (Django's ``SafeString``, Jinja2's ``Markup``) is output as it is;
- ``_`` / ``gettext``: Django's translation of the active language. Without values it is escaped
  like ``{% translate %}``; with values (``_("For %(email)s", email=...)``) the translated text is
  trusted and each value escaped, like ``{% blocktranslate %}``. ``ngettext`` likewise, like
  ``{% blocktranslate count %}``. Installed through Jinja2's i18n extension;
- ``url`` (``reverse``), ``static``, and the ``date`` filter (``date("DATE_FORMAT")``, an aware
  datetime in the current time zone, like Django's);
- the caller gives ``csrf_input`` (Django's backend does, when rendering with a request).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import jinja2
from django.core.signals import setting_changed
from django.templatetags.static import static
from django.urls import reverse
from django.utils import formats, timezone
from django.utils import translation as django_translation
from django.utils.autoreload import file_changed
from jinja2 import Environment
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from markupsafe import Markup, escape

# The template's sentences in each language, as they are output: escaped (no values) or trusted
# (with values, each escaped in turn). Looked up once per process: the catalogues do not change
# while it runs (a test changing the languages' settings, or the development server reloading a
# catalogue, empties it).
_translated: dict[tuple[str | None, str, bool], Markup] = {}


def gettext(message: str, **values: Any) -> Markup:
    return _gettext(django_translation.get_language(), message, values)


def _gettext(language: str | None, message: str, values: dict[str, Any]) -> Markup:
    key = (language, message, bool(values))
    text = _translated.get(key)
    if text is None:
        found = django_translation.gettext(message)
        text = _translated[key] = Markup(found) if values else escape(found)
    return text % values if values else text


def gettext_in(language: str | None) -> Any:
    """``gettext`` for one drawing in ``language``, the current one (a template's ``_`` reads
    ``gettext`` from its context first): the active language looked up once, not at each of the
    page's sentences."""

    def bound(message: str, **values: Any) -> Markup:
        return _gettext(language, message, values)

    return bound


def ngettext(singular: str, plural: str, number: int, **values: Any) -> Markup:
    return Markup(django_translation.ngettext(singular, plural, number)) % values


def date_filter(value: date | datetime | None, fmt: str = "DATE_FORMAT") -> str:
    """Django's ``date`` filter: an aware datetime in the current time zone, then formatted."""
    if value in (None, ""):
        return ""
    if isinstance(value, datetime) and timezone.is_aware(value):
        if fmt == "c":  # what Django's "c" gives
            return timezone.localtime(value).isoformat()
        return local_date(value, fmt)
    return formats.date_format(value, fmt)


def local_date(
    value: datetime, fmt: str = "DATE_FORMAT", *, language: str | None = None, zone: Any = None
) -> str:
    """An aware datetime in the current time zone, formatted by ``formats.date_format``: what
    ``date_format(localtime(value), fmt)`` gives, each (language, zone, format, instant) worked
    out once per process (a page shows dozens of dates, many of them the same day, and Django's
    formatting costs more than the rest of a box). ``language`` and ``zone``: the current ones,
    when the caller knows them already."""
    zone = zone or timezone.get_current_timezone()
    language = language or django_translation.get_language()
    return _formatted(language, str(zone), fmt, value, zone)


@functools.lru_cache(maxsize=8192)
def _formatted(language: str, zone_name: str, fmt: str, value: datetime, zone: Any) -> str:
    # Keyed on the zone's name (an aware datetime hashes by its instant alone) and the language
    # (the month's name); ``zone`` is the zone itself.
    return formats.date_format(timezone.localtime(value, zone), fmt)


def _settings_changed(**kwargs: Any) -> None:
    # A test that changes the formats, the time zone or the languages: what was worked out under
    # the old ones is not reused.
    _formatted.cache_clear()
    _translated.clear()
    _in_language.clear()


def _file_changed(file_path: Any, **kwargs: Any) -> None:
    if str(file_path).endswith(".mo"):
        _translated.clear()
        _in_language.clear()


setting_changed.connect(_settings_changed)
file_changed.connect(_file_changed)


class Sentences(Extension):
    """In a template compiled for one language (``in_language``), each ``{{ _("text") }}`` (a
    sentence without values) is written in when the template is compiled, translated and escaped
    as ``gettext`` gives it: a page's dozens of sentences are then text of the template, not
    calls at each drawing. Other templates, and sentences with values, are left as they are."""

    PATTERN = (
        ("variable_begin", None),
        ("name", "_"),
        ("lparen", None),
        ("string", None),
        ("rparen", None),
        ("variable_end", None),
    )

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        if not hasattr(self.environment, "sentences_language"):
            yield from stream
            return
        language = self.environment.sentences_language
        tokens = list(stream)
        size = len(self.PATTERN)
        i = 0
        while i < len(tokens):
            found = tokens[i : i + size]
            if len(found) == size and all(
                token.type == kind and (value is None or token.value == value)
                for token, (kind, value) in zip(found, self.PATTERN, strict=True)
            ):
                with django_translation.override(language):
                    text = _gettext(language, found[3].value, {})
                # With Django's entities (``Template``), as the drawing writes them.
                data = str(text).replace("&#39;", "&#x27;").replace("&#34;", "&quot;")
                yield Token(found[0].lineno, "data", data)
                i += size
            else:
                yield tokens[i]
                i += 1


# Per language, the environment whose templates have their sentences written in (``Sentences``).
_in_language: dict[str | None, Environment] = {}


def in_language(env: Environment, language: str | None) -> Environment:
    """``env`` for templates drawn in ``language`` only (the active one when they are drawn):
    their sentences without values translated once, when they are compiled (``Sentences``)."""
    found = _in_language.get(language)
    if found is None or found.linked_to is not env:
        found = env.overlay(extensions=[Sentences], cache_size=50)
        found.sentences_language = language  # type: ignore[attr-defined]
        _in_language[language] = found
    return found


def url(name: str, *args: Any, **kwargs: Any) -> str:
    return reverse(name, args=args or None, kwargs=kwargs or None)


class Template(jinja2.Template):
    """Output with the quotes' entities Django's escaping writes (``&#x27;``, ``&quot;``):
    markupsafe writes ``&#39;`` and ``&#34;``, and nothing else writes ``&#`` (an ``&`` in a
    value becomes ``&amp;``), so replacing them in the whole output is exact and cheaper than
    escaping each value twice."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        out = super().render(*args, **kwargs)
        if "&#" in out:
            out = out.replace("&#39;", "&#x27;").replace("&#34;", "&quot;")
        return out


def environment(**options: Any) -> Environment:
    options.setdefault("extensions", []).append("jinja2.ext.i18n")
    # Whitespace as Django's template language leaves it.
    options.setdefault("keep_trailing_newline", True)
    env = Environment(**options)
    env.template_class = Template
    # Old style: the callables above do the formatting and the escaping themselves.
    env.install_gettext_callables(gettext, ngettext, newstyle=False)  # type: ignore[attr-defined]
    env.globals.update({"url": url, "static": static})
    env.filters["date"] = date_filter
    return env
