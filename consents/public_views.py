"""Links we email to people from the compliance side: "keep me" and "confirm my new address".

GET shows a page with one button, POST acts: mail scanners open links.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from consents import retention, services
from consents.http import client_ip, user_agent
from consents.models import Contact

EMAIL_SALT = "assent.rectify.email"


@never_cache
def retention_keep(request: HttpRequest, token: str) -> HttpResponse:
    contact = retention.read_keep_token(token)
    if contact is None:
        return render(request, "bad_link.html", status=400)
    if request.method == "POST":
        retention.keep(
            contact,
            ip_address=client_ip(request),
            user_agent=user_agent(request),
        )
        return render(request, "consents/keep_done.html")
    return render(request, "consents/keep.html")


def email_token(contact: Contact, new_email: str) -> str:
    payload = {"c": contact.public_id, "v": contact.link_version, "e": new_email}
    return signing.dumps(payload, salt=EMAIL_SALT)


@never_cache
def email_confirm(request: HttpRequest, token: str) -> HttpResponse:
    try:
        payload = signing.loads(token, salt=EMAIL_SALT, max_age=settings.RECTIFY_LINK_TTL)
    except signing.BadSignature:
        return render(request, "bad_link.html", status=400)
    contact = Contact.objects.filter(public_id=payload.get("c")).first()
    if contact is None or payload.get("v") != contact.link_version:
        return render(request, "bad_link.html", status=400)
    new_email = payload.get("e", "")
    if contact.email == new_email:
        return render(request, "consents/email_done.html", {"email": new_email})
    if request.method == "POST":
        try:
            services.contact_email_change(
                contact=contact,
                new_email=new_email,
                proof=services.Proof(
                    actor="person",
                    collection_point="rectification:email-link",
                    ip_address=client_ip(request),
                    user_agent=user_agent(request),
                ),
            )
        except ValidationError:
            return render(request, "bad_link.html", status=400)
        return render(request, "consents/email_done.html", {"email": new_email})
    return render(request, "consents/email_confirm.html", {"email": new_email})


@never_cache
def notice_reconfirm(request: HttpRequest, token: str) -> HttpResponse:
    from consents import notices

    reconfirm = notices.read_link(token)
    if reconfirm is None:
        return render(request, "bad_link.html", status=400)
    notice = reconfirm.campaign.notice
    if request.method == "POST":
        notices.reconfirm(
            reconfirm,
            ip_address=client_ip(request),
            user_agent=user_agent(request),
        )
        return render(request, "consents/reconfirm.html", {"notice": notice, "done": True})
    done = reconfirm.confirmed_at is not None
    return render(request, "consents/reconfirm.html", {"notice": notice, "done": done})
