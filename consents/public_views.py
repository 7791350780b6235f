"""Links we email to people from the compliance side: "keep me" and "confirm my new address".

GET shows a page with one button, POST acts: mail scanners open links.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from consents import links, retention, services
from consents.http import client_ip, user_agent


def _bad_link(request: HttpRequest, exc: links.LinkError) -> HttpResponse:
    return render(request, "bad_link.html", {"reason": exc.reason}, status=400)


@never_cache
def retention_keep(request: HttpRequest, token: str) -> HttpResponse:
    try:
        contact = links.read("keep", token).contact
    except links.LinkError as exc:
        return _bad_link(request, exc)
    assert contact is not None
    if request.method == "POST":
        retention.keep(
            contact,
            ip_address=client_ip(request),
            user_agent=user_agent(request),
        )
        return render(request, "consents/keep_done.html")
    return render(request, "consents/keep.html")


@never_cache
def email_confirm(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = links.read("email_change", token)
    except links.LinkError as exc:
        # Bound to the address it replaces: once used, the change itself retires it.
        if exc.contact is not None and exc.contact.email == exc.payload.get("e"):
            return render(request, "consents/email_done.html", {"email": exc.contact.email})
        return _bad_link(request, exc)
    contact, payload = link.contact, link.payload
    assert contact is not None
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

    try:
        reconfirm = notices.read_link(token)
    except links.LinkError as exc:
        return _bad_link(request, exc)
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
