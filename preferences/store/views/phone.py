"""On the phone: the agent reads each notice, records the caller's answers, and reads them back."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.views.decorators.http import require_http_methods

from preferences.forms import topic_groups
from preferences.services import signup_topics
from preferences.store import keys, services
from preferences.store.forms import (
    ANSWER_PREFIX,
    PhoneCaptureForm,
    new_key,
)
from preferences.store.views.access import (
    CAPTURE,
    SESSION_PHONE_DONE,
    chosen_language,
    chosen_rows,
    current_store,
    form_language,
    key_reused,
    service_errors,
    staff_view,
    too_many,
)


def _script(groups: list[Any], answered: dict[str, str]) -> list[dict[str, Any]]:
    """Each topic's wording to read, and the answer recorded so far on each of its channels."""
    return [
        {
            "topic": group.topic,
            "notice": group.notice,
            "rows": [{"option": o, "answer": answered.get(o.value, "")} for o in group.options],
        }
        for group in groups
    ]


@staff_view(CAPTURE)
@require_http_methods(["GET", "HEAD", "POST"])
def phone(request: HttpRequest) -> HttpResponse:
    language, switch = form_language(request)
    with translation.override(language):
        groups = topic_groups(signup_topics(), language)
        status = 200
        if request.method == "POST" and switch:
            initial = {
                name: request.POST.get(name, "")
                for name in ("email", "phone", "first_name", "call_reference", "key")
            }
            initial.update(language=language, callback=bool(request.POST.get("callback")))
            form = PhoneCaptureForm(initial=initial, groups=groups)
            answered = {
                value: answer
                for value in form.offered
                if (answer := request.POST.get(ANSWER_PREFIX + value, "")) in ("yes", "no")
            }
        elif request.method == "POST":
            form = PhoneCaptureForm(request.POST, groups=groups)
            answered = form.answered()
            status = 400
            if form.is_valid():
                response = _phone_submit(request, form, language)
                if isinstance(response, HttpResponse):
                    return response
                status = response
        else:
            form = PhoneCaptureForm(initial={"key": new_key(), "language": language}, groups=groups)
            answered = {}
        if form.is_bound:
            form.describe_errors()
        context = {"form": form, "script": _script(groups, answered), "language": language}
        return render(request, "store/phone.html", context, status=status)


def _phone_submit(
    request: HttpRequest, form: PhoneCaptureForm, language: str
) -> HttpResponse | int:
    """The response when the answers were recorded (or refused outright), else the status of the
    form shown again, with what was typed and why."""
    if not services.capture_rate_allowed(f"user:{request.user.pk}"):
        return too_many(request)
    data = form.cleaned_data
    try:
        services.phone_capture(
            key=data["key"],
            user=request.user,
            call_reference=data["call_reference"],
            email=data["email"],
            phone=data["phone"],
            first_name=data["first_name"],
            answers=form.choices,
            refusals=form.refusals,
            callback=data["callback"],
            automated=data["automated"],
            language=language,
            store=current_store(request),
            notices=form.notices,
        )
    except ValidationError as exc:
        service_errors(form, exc)
        return 400
    except keys.CaptureKeyReused:
        key_reused(form)
        return 409
    request.session[SESSION_PHONE_DONE] = {
        "language": language,
        "yes": [list(pair) for pair in form.choices],
        "no": [list(pair) for pair in form.refusals],
        "callback": bool(data["callback"]),
        "automated": bool(data["automated"]),
        "call_reference": data["call_reference"],
    }
    return redirect("store_phone_done")


@staff_view(CAPTURE)
def phone_done(request: HttpRequest) -> HttpResponse:
    """The answers read back to the caller, once, in the language of the call."""
    summary = request.session.pop(SESSION_PHONE_DONE, None) or {}
    language = summary.get("language")
    with translation.override(chosen_language(request, language)):
        context = {
            "yes": chosen_rows(summary.get("yes", [])),
            "no": chosen_rows(summary.get("no", [])),
            "callback": summary.get("callback", False),
            "automated": summary.get("automated", False),
            "call_reference": summary.get("call_reference", ""),
        }
        return render(request, "store/phone_done.html", context)
