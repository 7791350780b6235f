"""Imports that keep history: Mailchimp, Brevo and Assent's own exports, each fact at its
original instant with the file's hash and row as proof, idempotent, with no email and no webhook
unless asked for. On SQLite through the services, on PostgreSQL through the bulk loader: the same
tests hold both."""

from __future__ import annotations

import hashlib
import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tablib
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from consents import clock, imports, services
from consents.models import (
    ChannelState,
    ConsentState,
    Contact,
    ContactFacts,
    Event,
    ImportedRow,
    ImportRun,
    Outbox,
    WebhookDelivery,
    WebhookEndpoint,
)
from tests.conftest import at

FILES = Path(__file__).resolve().parent / "imports"
NOW = at("2026-11-28T12:00")


@pytest.fixture(autouse=True)
def frozen() -> Any:
    with clock.frozen(NOW):
        yield


@pytest.fixture
def newsletter(make_topic: Callable[..., Any]) -> Any:
    make_topic("promotions")
    return make_topic("newsletter")


@pytest.fixture
def endpoint(db: Any) -> WebhookEndpoint:
    # An endpoint that wants everything: an import must still tell it nothing by default.
    return WebhookEndpoint.objects.create(
        url="https://crm.example.com/hooks", secret="whsec_" + "A" * 44, created_at=NOW
    )


def mailchimp(name: str, **options: Any) -> imports.Summary:
    options.setdefault("topic", "newsletter")
    return imports.run(FILES / name, preset="mailchimp", actor="staff:dpo", **options)


def state(email: str, topic: str = "newsletter", channel: str = "email") -> str:
    contact = Contact.objects.get(email__iexact=email)
    found = ConsentState.objects.filter(contact=contact, topic=topic, channel=channel).first()
    return found.status if found else "none"


def test_the_three_mailchimp_exports_are_imported_with_the_right_counts_and_no_email(
    newsletter: Any, endpoint: WebhookEndpoint, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        subscribed = mailchimp("mailchimp_subscribed.csv")
        unsubscribed = mailchimp("mailchimp_unsubscribed.csv")
        cleaned = mailchimp("mailchimp_cleaned.csv")
    assert dict(subscribed.counts) == {
        "rows": 6,
        "recorded": 5,
        "refused": 1,
        "status:subscribed": 5,
        "unproven": 1,
        "contacts_created": 5,
        "events": 8,  # four proven opt-ins, three with their confirmation, one unproven opt-in
    }
    assert unsubscribed.counts["status:unsubscribed"] == 3
    assert unsubscribed.counts["recorded"] == 3
    assert cleaned.counts["status:cleaned"] == 2
    assert cleaned.counts["recorded"] == 2
    assert Contact.objects.count() == 10
    # No email, and no webhook by default.
    assert Outbox.objects.count() == 0 and mail.outbox == []
    assert WebhookDelivery.objects.count() == 0
    # What each row now means.
    assert state("claire.martin@example.fr") == "opted_in"
    assert state("sophie.durand@example.fr") == "opted_in"
    assert state("ancien.client@example.fr") == "invalid"  # no proof: not consent
    assert state("paul.roux@example.fr") == "opted_out"
    assert state("marc.petit@example.fr") == "opted_out"
    old = Contact.objects.get(email="old.mailbox@example.fr")
    assert ContactFacts.objects.get(contact=old).undeliverable_email
    # The refusal names the row and the field, never the address.
    assert subscribed.run is not None
    assert subscribed.run.report[0] == {
        "row": 5,
        "outcome": "refused",
        "reason": "email: not a valid address",
    }
    assert [(r, e) for r, _, e in imports.unproven_contacts(subscribed.run)] == [
        (4, "ancien.client@example.fr")
    ]


def test_each_fact_keeps_its_original_instant_and_the_files_hash_and_row_as_proof(
    newsletter: Any,
) -> None:
    summary = mailchimp("mailchimp_subscribed.csv")
    sha = hashlib.sha256((FILES / "mailchimp_subscribed.csv").read_bytes()).hexdigest()
    assert summary.sha256 == sha
    claire = Contact.objects.get(email="claire.martin@example.fr")
    opt_in, confirm = Event.objects.filter(contact=claire, type__in=["opt_in", "doi_confirmed"])
    assert opt_in.occurred_at == at("2023-04-02T09:14:03")
    assert opt_in.recorded_at == NOW
    assert opt_in.method == confirm.method == "import"
    assert opt_in.data["doi"] == "pending"
    assert opt_in.proof == f"import mailchimp sha256:{sha} row:2"
    assert opt_in.evidence.ip_address == "203.0.113.10"
    assert opt_in.evidence.details["OPTIN_TIME"] == "2023-04-02 09:14:03"
    assert confirm.occurred_at == at("2023-04-02T09:16:45")
    assert claire.first_name == "Claire" and claire.collected_at == at("2023-04-02T09:14:03")
    unproven = Event.objects.get(contact__email="ancien.client@example.fr", type="opt_in")
    assert unproven.proof == "" and unproven.data["doi"] == "none"


def test_the_ledger_verifies_after_an_import(newsletter: Any) -> None:
    mailchimp("mailchimp_subscribed.csv")
    mailchimp("mailchimp_unsubscribed.csv")
    out = io.StringIO()
    call_command("verify_ledger", workers=1, stdout=out)
    assert out.getvalue().startswith("OK: 15 events in 8 chains verified")


def test_re_importing_the_same_file_records_nothing_new(newsletter: Any) -> None:
    mailchimp("mailchimp_subscribed.csv")
    events = Event.objects.count()
    again = mailchimp("mailchimp_subscribed.csv")
    assert Event.objects.count() == events
    assert again.counts["unchanged"] == 5 and again.counts["refused"] == 1
    assert again.counts["recorded"] == 0
    assert ImportedRow.objects.count() == 5


def test_a_changed_row_is_reported_as_a_conflict_and_not_recorded(
    newsletter: Any, tmp_path: Path
) -> None:
    mailchimp("mailchimp_subscribed.csv")
    events = Event.objects.count()
    changed = tmp_path / "export.csv"
    text = (FILES / "mailchimp_subscribed.csv").read_text()
    changed.write_text(text.replace("2023-06-10 18:42:11", "2023-06-11 18:42:11"))
    summary = imports.run(changed, preset="mailchimp", topic="newsletter", actor="staff:dpo")
    assert summary.counts["conflict"] == 1 and summary.counts["unchanged"] == 4
    assert Event.objects.count() == events
    conflict = next(i for i in summary.issues if i["outcome"] == "conflict")
    assert conflict["row"] == 3


def test_the_dry_run_changes_nothing_and_says_what_each_row_would_record(
    newsletter: Any,
) -> None:
    out = io.StringIO()
    call_command(
        "import_contacts",
        str(FILES / "mailchimp_subscribed.csv"),
        "--preset=mailchimp",
        "--topic=newsletter",
        "--dry-run",
        "--no-progress",
        stdout=out,
    )
    text = out.getvalue()
    assert Contact.objects.count() == 0 and Event.objects.count() == 0
    assert ImportRun.objects.count() == 0 and ImportedRow.objects.count() == 0
    assert "Dry run: nothing was changed." in text
    assert (
        "row 2: recorded: opt_in newsletter/email 2023-04-02T09:14:03+00:00 double opt-in" in text
    )
    assert "row 4: recorded (opt-in without proof: imported as such, not consent)" in text
    assert "row 5: refused (email: not a valid address)" in text


def test_the_command_writes_a_report_of_every_row(newsletter: Any, tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    call_command(
        "import_contacts",
        str(FILES / "mailchimp_unsubscribed.csv"),
        "--preset=mailchimp",
        "--topic=newsletter",
        f"--report={report}",
        "--no-progress",
        stdout=io.StringIO(),
    )
    lines = report.read_text().splitlines()
    assert lines[0] == "row,outcome,status,email,reason,events"
    assert len(lines) == 4
    assert "paul.roux@example.fr" in lines[1] and "opt_out newsletter/email" in lines[1]


def test_an_address_on_the_suppression_list_never_comes_back_as_consenting(
    newsletter: Any, make_contact: Callable[..., Contact]
) -> None:
    gone = make_contact(email="claire.martin@example.fr")
    services.consent_withdraw(
        contact=gone,
        topic="*",
        channel="*",
        proof=services.Proof(method="unsubscribe_link", actor="person"),
    )
    services.contact_erase(contact=gone, reason="DSR 7", actor="staff:dpo")
    summary = mailchimp("mailchimp_subscribed.csv")
    assert summary.counts["suppressed"] == 1
    claire = Contact.objects.get(email="claire.martin@example.fr")
    assert ChannelState.objects.get(contact=claire, channel="email").opted_out
    assert state("claire.martin@example.fr") != "opted_in"
    assert not Event.objects.filter(contact=claire, type="opt_in").exists()
    assert Event.objects.filter(contact=claire, method="suppression").exists()


def test_an_opt_out_on_file_newer_than_the_imported_opt_in_wins(
    newsletter: Any, make_contact: Callable[..., Contact]
) -> None:
    jules = make_contact(email="jules.bernard@example.fr")
    services.consent_withdraw(
        contact=jules,
        topic="newsletter",
        channel="email",
        proof=services.Proof(method="unsubscribe_link", actor="person"),
        occurred_at=at("2024-01-01T00:00"),
    )
    summary = mailchimp("mailchimp_subscribed.csv")
    assert summary.counts["recorded"] == 5 and summary.counts["contacts_created"] == 4
    # The imported opt-in (2023-06-10) joins the history at its instant, before the opt-out.
    assert Event.objects.filter(contact=jules, type="opt_in", method="import").exists()
    assert state("jules.bernard@example.fr") == "opted_out"


def test_an_imported_opt_in_newer_than_an_opt_out_on_file_counts(
    newsletter: Any, make_contact: Callable[..., Contact]
) -> None:
    jules = make_contact(email="jules.bernard@example.fr")
    services.consent_withdraw(
        contact=jules,
        topic="newsletter",
        channel="email",
        proof=services.Proof(method="unsubscribe_link", actor="person"),
        occurred_at=at("2023-01-01T00:00"),
    )
    mailchimp("mailchimp_subscribed.csv")
    assert state("jules.bernard@example.fr") == "opted_in"


def test_an_explicit_option_replays_webhooks_for_the_imported_events(
    newsletter: Any,
    endpoint: WebhookEndpoint,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: Any,
) -> None:
    from consents import webhooks_out

    monkeypatch.setattr(webhooks_out.sending, "queue_send", lambda delivery_id: True)
    with django_capture_on_commit_callbacks(execute=True):
        mailchimp("mailchimp_unsubscribed.csv", webhooks=True)
    types = sorted(WebhookDelivery.objects.values_list("type", flat=True))
    # Two proven opt-ins (one by double opt-in, confirmed) and three opt-outs; Marc's unproven
    # opt-in is no consent.
    assert types == [
        "consent.granted",
        "consent.pending",
        "consent.withdrawn",
        "consent.withdrawn",
        "consent.withdrawn",
        "doi.confirmed",
    ]


def test_xlsx_files_are_read_like_csv(newsletter: Any, tmp_path: Path) -> None:
    data = tablib.Dataset()
    data.load((FILES / "mailchimp_subscribed.csv").read_text(), format="csv")
    path = tmp_path / "subscribed.xlsx"
    path.write_bytes(data.export("xlsx"))
    summary = mailchimp(str(path))
    assert summary.counts["recorded"] == 5 and summary.counts["refused"] == 1
    assert state("claire.martin@example.fr") == "opted_in"


def test_brevo_blacklisted_contacts_are_opted_out_and_double_opt_in_is_proof(
    newsletter: Any,
) -> None:
    summary = imports.run(
        FILES / "brevo_contacts.csv", preset="brevo", topic="newsletter", actor="staff:dpo"
    )
    assert summary.counts["recorded"] == 3 and summary.counts["unproven"] == 1
    assert state("nadia.fontaine@example.fr") == "opted_in"
    assert state("thomas.girard@example.fr") == "invalid"
    assert state("ines.bonnet@example.fr") == "opted_out"
    ines = Contact.objects.get(email="ines.bonnet@example.fr")
    assert ines.phone == "+33612345003"
    outs = Event.objects.filter(contact=ines, type="opt_out")
    assert sorted(outs.values_list("topic", "channel")) == [("*", "email"), ("*", "sms")]


def test_assent_format_one_fact_per_row(newsletter: Any) -> None:
    summary = imports.run(FILES / "assent_history.csv", preset="assent", actor="staff:dpo")
    assert summary.counts["recorded"] == 4 and summary.counts["refused"] == 1
    refused = [i for i in summary.issues if i["outcome"] == "refused"]
    assert refused == [{"row": 6, "outcome": "refused", "reason": "topic: unknown topic"}]
    assert state("alice.blanc@example.fr") == "opted_in"
    assert state("alice.blanc@example.fr", channel="sms") == "invalid"
    assert state("bruno.noel@example.fr") == "opted_out"
    assert state("bruno.noel@example.fr", topic="promotions") == "opted_in"
    bruno = Contact.objects.get(email="bruno.noel@example.fr")
    assert bruno.locale == "en"
    again = imports.run(FILES / "assent_history.csv", preset="assent", actor="staff:dpo")
    assert again.counts["unchanged"] == 4


def test_a_file_of_another_format_is_refused_whole(newsletter: Any) -> None:
    with pytest.raises(CommandError, match="Missing column 'Email Address'"):
        call_command(
            "import_contacts",
            str(FILES / "brevo_contacts.csv"),
            "--preset=mailchimp",
            "--topic=newsletter",
            "--no-progress",
            stdout=io.StringIO(),
        )
    assert Contact.objects.count() == 0


def test_an_unknown_topic_is_refused_before_anything_is_read(newsletter: Any) -> None:
    with pytest.raises(imports.ImportError_, match="Unknown topic 'nope'"):
        mailchimp("mailchimp_subscribed.csv", topic="nope")
    assert ImportRun.objects.count() == 0


def test_future_instants_and_bad_dates_are_refused_per_row(newsletter: Any, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    shutil.copy(FILES / "mailchimp_subscribed.csv", path)
    text = path.read_text()
    text = text.replace("2023-06-10 18:42:11", "2031-01-01 00:00:00", 1)
    text = text.replace("2021-09-30 21:30:00", "yesterday", 1)
    path.write_text(text)
    summary = imports.run(path, preset="mailchimp", topic="newsletter", actor="staff:dpo")
    reasons = {i["row"]: i["reason"] for i in summary.issues}
    assert reasons[3] == "OPTIN_TIME: in the future"
    assert reasons[7] == "OPTIN_TIME: not a date and time"


def test_the_apis_services_queue_an_import_and_report_its_status(
    newsletter: Any, settings: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    from tests.workers import celery_publishing

    settings.VAR_DIR = tmp_path
    data = (FILES / "mailchimp_cleaned.csv").read_bytes()
    stored = imports.import_store(chunks=[data[:100], data[100:]], filename="cleaned.CSV")
    assert stored.name == hashlib.sha256(data).hexdigest() + ".csv"
    with pytest.raises(ValidationError) as caught:
        imports.import_store(chunks=[b"x"], filename="export.pdf")
    assert "file" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        imports.import_queue(path=stored, preset="mailchimp", topic="nope", actor="api:key-1")
    assert "topic" in caught.value.message_dict
    with (
        celery_publishing("memory://", eager=True),
        django_capture_on_commit_callbacks(execute=True),
    ):
        run = imports.import_queue(
            path=stored, preset="mailchimp", topic="newsletter", actor="api:key-1"
        )
        assert imports.import_as_dict(run)["status"] == "queued"
    run.refresh_from_db()
    status = imports.import_as_dict(run)
    assert status["status"] == "done" and status["counts"]["status:cleaned"] == 2
    assert status["file_sha256"] == hashlib.sha256(data).hexdigest()
    assert not stored.exists()  # the upload is not kept once imported


def test_the_command_shows_a_progress_bar(newsletter: Any) -> None:
    err = io.StringIO()
    call_command(
        "import_contacts",
        str(FILES / "mailchimp_subscribed.csv"),
        "--preset=mailchimp",
        "--topic=newsletter",
        stdout=io.StringIO(),
        stderr=err,
    )
    assert "] 6/7 rows" in err.getvalue() or "] 6/6 rows" in err.getvalue()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_record_what_one_process_records(newsletter: Any) -> None:
    """``workers``: each batch's new contacts chained and written by several processes, split by
    address. The same outcomes and facts as one process, a ledger that verifies, the rows
    remembered (a second import records nothing), projections a recomputation agrees with."""
    from consents import projections

    subscribed = mailchimp("mailchimp_subscribed.csv", workers=2, batch_rows=3)
    unsubscribed = mailchimp("mailchimp_unsubscribed.csv", workers=2)
    assert dict(subscribed.counts) == {
        "rows": 6,
        "recorded": 5,
        "refused": 1,
        "status:subscribed": 5,
        "unproven": 1,
        "contacts_created": 5,
        "events": 8,
    }
    assert unsubscribed.counts["recorded"] == 3
    assert Contact.objects.count() == 8
    assert ImportedRow.objects.count() == 8
    assert state("claire.martin@example.fr") == "opted_in"
    assert state("ancien.client@example.fr") == "invalid"
    assert state("paul.roux@example.fr") == "opted_out"
    out = io.StringIO()
    call_command("verify_ledger", workers=1, stdout=out)
    assert out.getvalue().startswith("OK: 15 events in 8 chains verified")
    again = mailchimp("mailchimp_subscribed.csv", workers=2)
    assert again.counts["unchanged"] == 5 and again.counts["recorded"] == 0
    for contact in Contact.objects.all():
        loaded = {
            "facts": list(ContactFacts.objects.filter(contact=contact).values()),
            "channels": sorted(
                tuple(sorted((k, v) for k, v in row.items() if k != "id"))
                for row in ChannelState.objects.filter(contact=contact).values()
            ),
            "consents": sorted(
                tuple(sorted((k, v) for k, v in row.items() if k != "id"))
                for row in ConsentState.objects.filter(contact=contact).values()
            ),
        }
        projections.projection_refresh(contact)
        assert loaded == {
            "facts": list(ContactFacts.objects.filter(contact=contact).values()),
            "channels": sorted(
                tuple(sorted((k, v) for k, v in row.items() if k != "id"))
                for row in ChannelState.objects.filter(contact=contact).values()
            ),
            "consents": sorted(
                tuple(sorted((k, v) for k, v in row.items() if k != "id"))
                for row in ConsentState.objects.filter(contact=contact).values()
            ),
        }, contact.email


# --- Workers reading their own share of the file -------------------------------------------------

MAILCHIMP_HEADER = (FILES / "mailchimp_subscribed.csv").read_text().splitlines()[0]


def _mailchimp_file(path: Path, prefix: str, rows: int = 48) -> Path:
    """A Mailchimp export: double and single opt-ins, with and without proof, a contact on two
    rows, addresses refused, internationalised domains, rows keyed by their address, a line left
    blank, a row dated in the future."""
    lines = [MAILCHIMP_HEADER]
    for i in range(rows):
        email = f"{prefix}person.{i}@Example.FR"
        optin, confirm = "2023-04-02 09:14:03", ""
        if i % 7 == 3:
            email = f"{prefix}person.{i - 1}@example.fr"  # the previous row's contact again
            optin = "2023-05-02 09:14:03"
        if i % 11 == 5:
            email = f"{prefix}bad address {i}"
        if i % 13 == 6:
            email = f"{prefix}person.{i}@bücher.example"
        if i % 17 == 8:
            optin = "2099-01-01 00:00:00"  # in the future: refused
        if i % 5 in (1, 4):
            confirm = "2023-04-02 09:15:00"
        ip = f"203.0.113.{i % 250 + 1}" if i % 3 else ""
        euid = f"{prefix}{i:08x}" if i % 9 else ""  # some rows keyed by their address
        leid = i if i % 9 else ""
        lines.append(
            f'"{email}",First{i},,,,2,"{optin}",{ip},"{confirm}",{ip},,,,,,,,'
            f'"2024-05-01 09:00:00",{leid},{euid},,'
        )
        if i == 20:
            lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


def _ledger_of(prefix: str) -> dict[str, Any]:
    """Each contact of the prefix (by address, the prefix left out): its events and projections."""
    out: dict[str, Any] = {}
    for contact in Contact.objects.filter(email__startswith=prefix):
        events = list(
            Event.objects.filter(contact=contact)
            .order_by("seq")
            .values_list("seq", "type", "topic", "channel", "occurred_at", "method", "data")
        )
        facts = ContactFacts.objects.filter(contact=contact).values().get()
        for name in ("id", "contact_id"):
            facts.pop(name, None)
        consents = sorted(
            (row.topic, row.channel, row.status)
            for row in ConsentState.objects.filter(contact=contact)
        )
        channels = sorted(
            tuple(sorted((k, v) for k, v in row.items() if k not in ("id", "contact_id")))
            for row in ChannelState.objects.filter(contact=contact).values()
        )
        imported = sorted((r.row, r.proven) for r in ImportedRow.objects.filter(contact=contact))
        key = contact.email.removeprefix(prefix)
        out[key] = (contact.first_name, events, facts, consents, channels, imported)
    return out


def _plan_words(plan: imports.RowPlan, prefix: str) -> tuple[Any, ...]:
    return (
        plan.row, plan.outcome, plan.status, plan.email.removeprefix(prefix), plan.reason,
        plan.proven, plan.suppressed, plan.existing,
        [e.replace(prefix, "") for e in plan.events], plan.event_count,
    )  # fmt: skip


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_reading_their_own_share_record_what_one_process_records(
    newsletter: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    from consents.imports import shares

    split = []
    real_run = shares.run
    monkeypatch.setattr(shares, "run", lambda *a, **k: split.append(1) or real_run(*a, **k))
    results = {}
    for prefix, workers in (("one-", 1), ("two-", 2), ("three-", 3)):
        path = _mailchimp_file(tmp_path / f"{prefix}export.csv", prefix)
        seen: list[imports.RowPlan] = []
        progress: list[tuple[int, int]] = []
        summary = imports.run(
            path, preset="mailchimp", topic="newsletter", actor="staff:dpo", workers=workers,
            batch_rows=10, on_row=seen.append, progress=lambda d, t, p=progress: p.append((d, t)),
        )  # fmt: skip
        assert summary.run is not None and summary.run.status == ImportRun.Status.DONE
        issues = [{**i, "reason": i["reason"].replace(prefix, "")} for i in summary.run.report]
        results[prefix] = (
            dict(summary.counts),
            issues,
            [_plan_words(p, prefix) for p in seen],
            progress,
            _ledger_of(prefix),
        )
    assert len(split) == 2  # the two imports with workers took their shares
    one = results["one-"]
    assert one[0]["recorded"] > 30 and one[0]["refused"] >= 5 and one[0]["unproven"] >= 1
    assert len(one[4]) == one[0]["contacts_created"]
    for prefix in ("two-", "three-"):
        for got, expected in zip(results[prefix], one, strict=True):
            assert got == expected, prefix
    out = io.StringIO()
    call_command("verify_ledger", workers=1, stdout=out)
    assert out.getvalue().startswith("OK:")
    # Imported again with workers: nothing new, every row recognised.
    again = imports.run(
        tmp_path / "two-export.csv", preset="mailchimp", topic="newsletter", actor="staff:dpo",
        workers=2, batch_rows=10,
    )  # fmt: skip
    assert again.counts["recorded"] == 0
    assert again.counts["unchanged"] == one[0]["recorded"]


def test_a_file_whose_key_spans_two_shares_is_not_split(tmp_path: Path) -> None:
    from consents.imports import shares

    path = tmp_path / "export.csv"
    # Two addresses in different shares under one source id (EUID): one process records the
    # first and reports the second; so such a file is imported by one process.
    a, b = (
        "a@example.com",
        next(
            f"b{i}@example.com"
            for i in range(100)
            if shares.share_of(f"b{i}@example.com", 2) != shares.share_of("a@example.com", 2)
        ),
    )
    path.write_text(
        "Email Address,OPTIN_TIME,EUID\n"
        f"{a},2023-04-02 09:14:03,same\n{b},2023-04-02 09:14:03,same\n"
    )
    assert shares.plan(path, "mailchimp", 2) is None
    # An EUID that is another row's address (its key when it has no EUID): not split either.
    path.write_text(
        f"Email Address,OPTIN_TIME,EUID\n{a},2023-04-02 09:14:03,\n{b},2023-04-02 09:14:03,{a}\n"
    )
    assert shares.plan(path, "mailchimp", 2) is None
    path.write_text(
        f"Email Address,OPTIN_TIME,EUID\n{a},2023-04-02 09:14:03,x\n"
        f"{b},2023-04-02 09:14:03,y\n\n{a.upper()},2023-04-02 09:14:03,x\n"
    )
    assert shares.plan(path, "mailchimp", 2) == 3
    path.write_text("email,source_id\na@example.com,a|b\n")
    assert shares.plan(path, "assent", 2) is None
    path.write_text("Name,OPTIN_TIME\nx,2023-04-02 09:14:03\n")
    assert shares.plan(path, "mailchimp", 2) is None  # no address column: said by the importer


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_on_a_file_that_cannot_be_split_record_what_one_process_records(
    newsletter: Any, tmp_path: Path
) -> None:
    from consents.imports import shares

    a = "a@example.com"
    b = next(
        f"b{i}@example.com"
        for i in range(100)
        if shares.share_of(f"b{i}@example.com", 2) != shares.share_of(a, 2)
    )
    path = tmp_path / "export.csv"
    path.write_text(
        "Email Address,OPTIN_TIME,OPTIN_IP,EUID\n"
        f"{a},2023-04-02 09:14:03,203.0.113.1,same\n{b},2023-04-02 09:14:03,203.0.113.2,same\n"
    )
    summary = imports.run(
        path, preset="mailchimp", topic="newsletter", actor="staff:dpo", workers=2
    )
    assert summary.counts["recorded"] == 1 and summary.counts["conflict"] == 1
    assert list(Contact.objects.values_list("email", flat=True)) == [a]


def test_the_shares_are_the_rows_of_one_process_split_by_address(tmp_path: Path) -> None:
    from consents.imports import shares
    from consents.imports.importer import _numbered_batches
    from consents.imports.reading import read_rows

    path = _mailchimp_file(tmp_path / "export.csv", "x-", rows=60)
    with path.open("a") as f:
        f.write('short.row@example.com,Short\n\n"  Padded@Example.com ",Padded,,,,,x\n')
    whole = list(_numbered_batches(read_rows(path), 7))
    parts = [list(shares.own_batches(path, "mailchimp", s, 3, 7)) for s in range(3)]
    for part in parts:
        assert [number for number, _ in part] == list(range(len(whole)))
    for number, batch in enumerate(whole):
        merged = sorted(row for part in parts for row in part[number][1])
        assert merged == batch
    # A contact's rows are in one share, whatever the spelling of its domain.
    for raw in ("Claire@Example.FR", "claire@example.fr", " Claire@EXAMPLE.fr\t"):
        assert shares.share_of(raw, 7) == shares.share_of("Claire@example.fr", 7)
    assert shares.share_of("x@bücher.example", 5) == shares.share_of("x@xn--bcher-kva.example", 5)


@pytest.mark.parametrize(
    "raw",
    [
        "claire@example.fr",
        "Claire.Martin@Example.FR",
        "  x@y.com ",
        "x@bücher.example",
        "X@BÜCHER.EXAMPLE",
        "ß@straße.de",
        "no-at-sign",
        "a@b@c",
        "\u0131@example.com",
    ],
)
def test_the_address_key_is_the_normalised_address_upper_cased(raw: str) -> None:
    from consents.imports import shares

    try:
        expected: str | None = services.normalize_email(raw).upper()
    except ValidationError:
        expected = None
    key = shares.address_key(raw)
    # An ASCII address the mapper refuses may have any key: its row is refused whatever share.
    if expected is not None or not raw.strip().isascii():
        assert key == expected


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_command_imports_a_large_file_with_one_process_per_cpu(
    newsletter: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    from consents.imports import shares

    monkeypatch.setattr(shares, "AUTO_LINES", 10)  # "large"
    monkeypatch.setattr(shares.os, "cpu_count", lambda: 2)
    split: list[int] = []
    real_run = shares.run
    monkeypatch.setattr(
        shares,
        "run",
        lambda importer, *a, **k: split.append(importer.workers) or real_run(importer, *a, **k),
    )
    path = _mailchimp_file(tmp_path / "export.csv", "auto-")
    out = io.StringIO()
    call_command(
        "import_contacts", str(path), "--preset=mailchimp", "--topic=newsletter",
        "--no-progress", stdout=out,
    )  # fmt: skip
    assert split == [2]
    run = ImportRun.objects.get()
    assert run.status == ImportRun.Status.DONE and run.counts["recorded"] > 30
    assert ImportedRow.objects.count() == run.counts["recorded"]
    # A small file: one process.
    small = tmp_path / "small.csv"
    small.write_text("\n".join(path.read_text().splitlines()[:5]) + "\n")
    monkeypatch.setattr(shares, "AUTO_LINES", 100)
    call_command(
        "import_contacts", str(small), "--preset=mailchimp", "--topic=newsletter",
        "--no-progress", stdout=io.StringIO(),
    )  # fmt: skip
    assert split == [2]


def test_no_processes_are_started_where_they_cannot_be(newsletter: Any, monkeypatch: Any) -> None:
    from consents.imports import shares

    monkeypatch.setattr(shares.os, "cpu_count", lambda: 4)
    # In a transaction (this test's), in a dry run, for a small file: one process.
    assert shares.automatic(10**6, dry_run=False) == 1
    assert shares.automatic(10**6, dry_run=True) == 1
    assert shares.automatic(10, dry_run=False) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_that_fails_fails_the_import(
    newsletter: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    from consents import bulk

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise bulk.BulkError("contact #1, email: refused here")

    monkeypatch.setattr(bulk, "load", refuse)  # in the worker processes too (forked)
    path = _mailchimp_file(tmp_path / "export.csv", "fail-")
    with pytest.raises(imports.ImportError_, match="refused here"):
        imports.run(
            path, preset="mailchimp", topic="newsletter", actor="staff:dpo", workers=2,
            batch_rows=10,
        )  # fmt: skip
    run = ImportRun.objects.get()
    assert run.status == ImportRun.Status.FAILED and "refused here" in run.error
    assert Contact.objects.count() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_file_shorter_than_its_first_reading_fails_the_import(
    newsletter: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    from consents.imports import shares

    real_plan = shares.plan
    # As if the file had lost its last rows between the first reading and the workers'.
    monkeypatch.setattr(shares, "plan", lambda *a: real_plan(*a) + 10)
    path = _mailchimp_file(tmp_path / "export.csv", "short-")
    with pytest.raises(imports.ImportError_, match="ended before its last batch"):
        imports.run(
            path, preset="mailchimp", topic="newsletter", actor="staff:dpo", workers=2,
            batch_rows=10,
        )  # fmt: skip
    assert ImportRun.objects.get().status == ImportRun.Status.FAILED
