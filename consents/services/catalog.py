"""The catalogue: topics, the notices' wording (drafts and published versions), categories."""

from __future__ import annotations

import hashlib

from django.core.exceptions import ValidationError
from django.db import transaction

from consents import clock, validation, webhooks_out
from consents.models import Category, Notice, Topic
from consents.vocab import ANY, CHANNELS, TOPIC_PURPOSES


@transaction.atomic
def topic_create(
    *,
    slug: str,
    purpose: str,
    channels: list[str],
    name_fr: str,
    name_en: str,
    description_fr: str = "",
    description_en: str = "",
    frequencies: list[str] | None = None,
    display_order: int = 0,
    active: bool = True,
) -> Topic:
    validation.choice("purpose", purpose, TOPIC_PURPOSES)
    if not channels:
        raise ValidationError({"channels": "A topic is offered on at least one channel."})
    for channel in channels:
        validation.choice("channels", channel, CHANNELS)
    if slug == ANY or Topic.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": "This slug is taken."})
    topic = Topic(
        slug=slug,
        purpose=purpose,
        channels=list(dict.fromkeys(channels)),
        name_fr=name_fr,
        name_en=name_en,
        description_fr=description_fr,
        description_en=description_en,
        frequencies=list(frequencies or []),
        display_order=display_order,
        active=active,
    )
    topic.full_clean()
    topic.save()
    return topic


def _next_notice_version(topic: Topic | None, language: str) -> int:
    """The version after the latest of this topic and language, drafts included (locked, so two
    writers cannot take the same number)."""
    latest = (
        Notice.objects.select_for_update()
        .filter(topic=topic, language=language)
        .order_by("-version")
        .first()
    )
    return latest.version + 1 if latest else 1


@transaction.atomic
def notice_publish(*, topic: Topic | None, language: str, text: str) -> Notice:
    """Publish a new version of a notice's wording; published versions never change."""
    validation.choice("language", language, validation.LOCALES)
    if not text.strip():
        raise ValidationError({"text": "The wording cannot be empty."})
    notice = Notice.objects.create(
        topic=topic,
        language=language,
        version=_next_notice_version(topic, language),
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        published_at=clock.now(),
    )
    webhooks_out.notice_published(notice=notice)
    return notice


@transaction.atomic
def notice_draft_create(*, topic: Topic | None, language: str, text: str) -> Notice:
    """A draft: the next version number, editable until published, shown to nobody."""
    validation.choice("language", language, validation.LOCALES)
    return Notice.objects.create(
        topic=topic,
        language=language,
        version=_next_notice_version(topic, language),
        text=text,
        published_at=None,
    )


@transaction.atomic
def notice_draft_update(*, notice: Notice, text: str) -> Notice:
    locked = Notice.objects.select_for_update().get(pk=notice.pk)
    if locked.is_published:
        raise ValidationError({"text": "A published notice cannot change: write a new version."})
    locked.text = text
    locked.save(update_fields=["text"])
    return locked


@transaction.atomic
def notice_draft_publish(*, notice: Notice) -> Notice:
    """Publish a draft: its wording and hash are fixed from now on (a trigger guards it)."""
    locked = Notice.objects.select_for_update().get(pk=notice.pk)
    if locked.is_published:
        raise ValidationError({"published_at": "This notice is already published."})
    if not locked.text.strip():
        raise ValidationError({"text": "The wording cannot be empty."})
    newer = Notice.objects.filter(
        topic_id=locked.topic_id,
        language=locked.language,
        version__gt=locked.version,
        published_at__isnull=False,
    )
    if newer.exists():
        raise ValidationError({"version": "A later version is already published."})
    locked.sha256 = hashlib.sha256(locked.text.encode()).hexdigest()
    locked.published_at = clock.now()
    locked.save(update_fields=["sha256", "published_at"])
    webhooks_out.notice_published(notice=locked)
    return locked


@transaction.atomic
def category_set(*, slug: str, family: str, name: str = "", name_en: str = "") -> Category:
    # RULES.md: an empty string is never a value; a category with no family is its own family.
    if not slug:
        raise ValidationError({"slug": "This field is required."})
    if not family:
        raise ValidationError({"family": "This field is required."})
    category, _ = Category.objects.update_or_create(
        slug=slug, defaults={"family": family, "name": name, "name_en": name_en}
    )
    return category
