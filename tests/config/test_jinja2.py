"""The Jinja2 environment writes what Django's template language writes for the same template:
the same escaping (entities included), Django's safe strings left alone, the same translations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.template import engines
from django.utils import translation
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy

from config import jinja2 as config_jinja2

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


SENTENCES = (
    '{{ _("Your preferences") }}|{{ _("Nothing was recorded.") }}|'
    '<a title="{{ _(\'On this page\') }}">|{{- _("Saved") -}}|{{ _ ( "Saved" ) }}|'
    '{{ _("<b>Tom\'s</b> & \\"x\\"") }}|{{ _("For %(email)s", email=text) }}|'
    '{{ _("Saved")|length }}|{% if _("Saved") %}yes{% endif %}|{{ _(text) }}'
)


@pytest.mark.parametrize("language", ["fr", "en"])
def test_sentences_written_in_when_compiled_are_those_drawn(language: str) -> None:
    """A template compiled for one language (``in_language``) writes what the same template
    writes through ``gettext`` at each drawing."""
    env = engines["jinja2"].env
    values = {"text": VALUES["text"]}
    config_jinja2._translated.clear()
    # Compiled while another language is active (a template is compiled once, for its own).
    with translation.override("en" if language == "fr" else "fr"):
        compiled = config_jinja2.in_language(env, language).from_string(SENTENCES)
    config_jinja2._translated.clear()
    with translation.override(language):
        drawn = env.from_string(SENTENCES).render(values)
        gettext = config_jinja2.gettext_in(language)
        written = compiled.render({**values, "_": gettext, "gettext": gettext})
    assert written == drawn
    assert ("Vos préférences" if language == "fr" else "Your preferences") in written
    assert "&lt;b&gt;Tom&#x27;s&lt;/b&gt; &amp; &quot;x&quot;" in written
    # The sentences without values are the template's text, not calls.
    code = compiled.environment.compile(SENTENCES, raw=True)
    assert "'Your preferences')" not in code and "'Saved')" in code


def test_templates_of_the_shared_environment_are_left_as_they_are() -> None:
    env = engines["jinja2"].env
    assert "'Your preferences')" in env.compile('{{ _("Your preferences") }}', raw=True)
    assert config_jinja2.in_language(env, "fr") is config_jinja2.in_language(env, "fr")
    assert config_jinja2.in_language(env, "fr") is not config_jinja2.in_language(env, "en")
