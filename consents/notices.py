"""A new version of a topic's notice: who consented under an older one, and asking them again.

The ask is an email with a signed link (scope ``reconfirm``) bound to one ``ReconfirmRequest``,
minted when the email is sent; the link's page shows
the new wording and its POST records a new ``opt_in`` under the new notice (method
``double_opt_in``: the owner of the address confirmed from their mailbox, actor the person). Until
they answer, their earlier consent stands (RULES.md: a consent is not taken away by an ask).
"""

from __future__ import annotations

import contextlib

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet

from consents import clock, links, services
from consents.locks import run_lock
from consents.models import (
    ConsentState,
    Contact,
    Notice,
    ReconfirmCampaign,
    ReconfirmRequest,
)
from consents.outbox import email_enqueue
from consents.vocab import Channel, EventType, Method

TEMPLATE = "notice-reconfirm"


def older_consents(notice: Notice) -> QuerySet[ConsentState]:
    """Current consents on the notice's topic whose valid opt-in named an older version."""
    if notice.topic_id is None or not notice.is_published:
        return ConsentState.objects.none()
    return ConsentState.objects.filter(
        topic=notice.topic.slug,
        status=ConsentState.Status.OPTED_IN,
        contact__events__type=EventType.OPT_IN,
        contact__events__topic=notice.topic.slug,
        contact__events__channel=F("channel"),
        contact__events__occurred_at=F("since"),
        contact__events__notice__language=notice.language,
        contact__events__notice__version__lt=notice.version,
    ).distinct()


@transaction.atomic
def campaign_start(*, notice: Notice, actor: str) -> ReconfirmCampaign:
    if not notice.is_published or notice.topic_id is None:
        raise ValueError("Only a published topic notice can be re-confirmed.")
    campaign = ReconfirmCampaign.objects.create(
        notice=notice, started_at=clock.now(), started_by=actor[:150]
    )

    def kick() -> None:
        from consents.tasks import reconfirm_campaigns

        # A broker outage does not matter: the beat task runs every minute anyway.
        with contextlib.suppress(Exception):
            reconfirm_campaigns.apply_async(retry=False)

    transaction.on_commit(kick)
    return campaign


def link(request: ReconfirmRequest) -> str:
    """The address of a request's link, as its email carries it."""
    return links.url("reconfirm", request.contact, r=request.pk)


def read_link(token: str) -> ReconfirmRequest:
    """The request a link answers, or ``links.LinkError``."""
    link = links.read("reconfirm", token)
    if not isinstance(link.payload.get("r"), int):
        raise links.LinkError("invalid", link.payload)
    request = (
        ReconfirmRequest.objects.select_related("contact", "campaign__notice__topic")
        .filter(pk=link.payload["r"])
        .first()
    )
    if request is None or link.contact is None or request.contact_id != link.contact.pk:
        raise links.LinkError("unknown", link.payload)
    return request


def campaign_batch(campaign: ReconfirmCampaign, limit: int) -> int:
    """Ask the next ``limit`` people (email consents only); the last batch ends the campaign.

    Each person is asked again under their lock, once: a run that finds them asked (another run
    at once), erased, or no longer consenting under an older wording skips them."""
    notice = campaign.notice
    asked = ReconfirmRequest.objects.filter(campaign=campaign).values("contact_id")
    still_older = older_consents(notice).filter(channel=Channel.EMAIL)
    todo = list(
        still_older.filter(contact__email__isnull=False)
        .exclude(contact_id__in=asked)
        .values_list("contact_id", flat=True)
        .order_by("contact_id")[:limit]
    )
    sent = 0
    for contact_id in todo:
        with transaction.atomic():
            contact = Contact.objects.select_for_update().get(pk=contact_id)
            if not contact.email or not still_older.filter(contact_id=contact_id).exists():
                continue
            try:
                with transaction.atomic():
                    request = ReconfirmRequest.objects.create(
                        campaign=campaign,
                        contact=contact,
                        channel=Channel.EMAIL,
                        created_at=clock.now(),
                    )
            except IntegrityError:
                continue  # asked by another run meanwhile
            email_enqueue(
                to=contact.email,
                template=TEMPLATE,
                language=contact.locale,
                contact=contact,
                context={
                    "topic": notice.topic.name_en
                    if contact.locale == "en"
                    else notice.topic.name_fr,
                    "text": notice.text,
                },
                links={"confirm_url": links.intent("reconfirm", r=request.pk)},
            )
        sent += 1
    if len(todo) < limit:
        campaign.finished_at = clock.now()
        campaign.save(update_fields=["finished_at"])
    return sent


def campaigns_run(limit: int | None = None) -> int:
    """One rate-limited step of every running campaign; one run at a time (``run_lock``)."""
    budget = limit or settings.RECONFIRM_MAX_PER_RUN
    sent = 0
    with run_lock("reconfirm-campaigns") as held:
        if not held:
            return 0
        for campaign in ReconfirmCampaign.objects.filter(finished_at__isnull=True).order_by("pk"):
            if budget - sent <= 0:
                break
            sent += campaign_batch(campaign, budget - sent)
    return sent


@transaction.atomic
def reconfirm(request: ReconfirmRequest, *, ip_address: str | None, user_agent: str) -> bool:
    """The person confirmed under the new wording: a new ``opt_in`` naming it."""
    locked = ReconfirmRequest.objects.select_for_update().get(pk=request.pk)
    if locked.confirmed_at is not None:
        return False
    notice = locked.campaign.notice
    # Still receiving what they are asked to re-confirm: the same consent again, not a new one.
    renewal = ConsentState.objects.filter(
        contact=locked.contact,
        topic=notice.topic.slug,
        channel=locked.channel,
        status=ConsentState.Status.OPTED_IN,
    ).exists()
    services.consent_grant(
        contact=locked.contact,
        topic=notice.topic.slug,
        channel=locked.channel,
        renewal=renewal,
        proof=services.Proof(
            method=Method.DOUBLE_OPT_IN,
            actor="person",
            collection_point="notice re-confirmation link",
            notice=notice,
            ip_address=ip_address,
            user_agent=user_agent[:500],
        ),
    )
    locked.confirmed_at = clock.now()
    locked.save(update_fields=["confirmed_at"])
    return True
