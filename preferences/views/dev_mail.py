"""/dev/mail/: the mail the embedded default wrote to files, shown to this machine only."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from consents.http import client_ip
from preferences import devmail


@never_cache
@require_GET
def dev_mail(request: HttpRequest) -> HttpResponse:
    if not devmail.shown_to(client_ip(request)):
        raise Http404
    context = {"mails": devmail.mail_list(), "folder": devmail.mail_dir()}
    return render(request, "preferences/dev_mail_list.html", context)


@never_cache
@require_GET
def dev_mail_message(request: HttpRequest, name: str) -> HttpResponse:
    if not devmail.shown_to(client_ip(request)):
        raise Http404
    mails = devmail.mail_file(name)
    if mails is None:
        raise Http404
    response = render(request, "preferences/dev_mail_message.html", {"mails": mails})
    # The email's HTML is shown in a sandboxed srcdoc iframe: no script runs anywhere here.
    response["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    return response
