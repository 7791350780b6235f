"""The Jinja2 environment writes what Django's template language writes for the same template:
the same escaping (entities included), Django's safe strings left alone, the same translations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.template import engines
from django.utils import translation
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy

VALUES = {
    "text": '<b>"Tom" & l\'été</b> &#39; &amp;',
    "safe": mark_safe("<em>déjà sûr</em>"),
    "lazy": gettext_lazy("Nothing was recorded."),
    "number": 3,
    "at": datetime(2026, 3, 12, 13, 5, tzinfo=UTC),
}

DJANGO = (
    "{% load i18n %}{{ text }}|{{ safe }}|{{ lazy }}|{{ number }}|"
    '{% translate "Your preferences" %}|'
    "{% blocktranslate with email=text %}For {{ email }}{% endblocktranslate %}|"
    "{% blocktranslate count months=number %}Pause for {{ months }} month{% plural %}"
    "Pause for {{ months }} months{% endblocktranslate %}|"
    '{{ at|date:"DATE_FORMAT" }}|{{ at|date:"DATETIME_FORMAT" }}|{{ at|date:"c" }}|'
    "{% url 'preferences' %}"
)
JINJA = (
    "{{ text }}|{{ safe }}|{{ lazy }}|{{ number }}|"
    '{{ _("Your preferences") }}|'
    '{{ _("For %(email)s", email=text) }}|'
    '{{ ngettext("Pause for %(months)s month", "Pause for %(months)s months", number, '
    "months=number) }}|"
    '{{ at|date("DATE_FORMAT") }}|{{ at|date("DATETIME_FORMAT") }}|{{ at|date("c") }}|'
    '{{ url("preferences") }}'
)


@pytest.mark.parametrize("language", ["fr", "en"])
def test_jinja2_writes_what_django_writes(language: str) -> None:
    with translation.override(language):
        django_out = engines["django"].from_string(DJANGO).render(VALUES)
        jinja_out = engines["jinja2"].from_string(JINJA).render(VALUES)
    assert jinja_out == django_out
    assert "&lt;b&gt;&quot;Tom&quot; &amp; l&#x27;été&lt;/b&gt; &amp;#39; &amp;amp;" in jinja_out
    assert "<em>déjà sûr</em>" in jinja_out


def test_the_preference_page_body_escapes_what_it_is_given() -> None:
    out = engines["jinja2"].from_string("{{ x }}{{ y }}").render({"x": "<script>", "y": "'\""})
    assert out == "&lt;script&gt;&#x27;&quot;"
