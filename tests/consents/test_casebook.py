from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from django.core.management import call_command

# The project's own case book: the public cases of RULES.md version 2 and cases of our own
# (docs/rules.md describes the rules it checks).
PUBLIC = Path(__file__).resolve().parents[2] / "docs" / "casebook.json"


def _run(path: Path, *args: str) -> int:
    try:
        call_command("casebook", str(path), *args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture
def book() -> dict:
    return json.loads(PUBLIC.read_text())


@pytest.fixture
def write(tmp_path):
    def write(data: dict) -> Path:
        path = tmp_path / "book.json"
        path.write_text(json.dumps(data))
        return path

    return write


@pytest.mark.django_db
def test_public_case_book_passes(capsys):
    assert PUBLIC.is_file(), f"missing {PUBLIC}"
    assert _run(PUBLIC, "--json") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    summary = lines[-1]["summary"]
    assert summary["cases"] == len(json.loads(PUBLIC.read_text())["cases"]) > 50
    assert summary["failed"] == 0
    for line in lines[:-1]:
        assert set(line) == {"id", "allowed", "reason", "audience", "ok"}
        assert line["ok"] is True
        assert line["audience"] == line["allowed"]


@pytest.mark.postgres
@pytest.mark.django_db
def test_public_case_book_passes_on_postgres(capsys):
    assert _run(PUBLIC, "--json") == 0


@pytest.mark.django_db
def test_runner_leaves_nothing_behind(book, write):
    from consents.models import Contact, Event, Topic

    _run(write(book))
    assert not Contact.objects.exists()
    assert not Event.objects.exists()
    assert not Topic.objects.exists()


@pytest.mark.django_db
def test_a_wrong_expectation_fails_with_exit_1(book, write, capsys):
    case = next(c for c in book["cases"] if c["id"] == "b2c-opt-in")
    case["expect"] = {"allowed": False, "reason": "NO_CONSENT"}
    assert _run(write(book)) == 1
    out = capsys.readouterr().out
    assert "FAIL b2c-opt-in" in out
    assert f"{len(book['cases']) - 1} passed, 1 failed" in out


@pytest.mark.django_db
def test_readable_table_without_json(book, write, capsys):
    book["cases"] = book["cases"][:2]
    assert _run(write(book)) == 0
    out = capsys.readouterr().out
    assert "ok   b2c-prospect-no-consent" in out
    assert "2 cases: 2 passed, 0 failed" in out


def _case(book: dict, case_id: str = "b2c-opt-in") -> dict:
    return next(c for c in book["cases"] if c["id"] == case_id)


MALFORMED = [
    ("naive timestamp", lambda c: c["events"][0].update(at="2026-02-01T10:00:00"), "'at'"),
    ("unknown topic", lambda c: c["events"][0].update(topic="gardening"), "'topic'"),
    ("unknown channel", lambda c: c["message"].update(channel="fax"), "'channel'"),
    ("unknown purpose", lambda c: c["message"].update(purpose="spam"), "'purpose'"),
    ("unknown event type", lambda c: c["events"][0].update(type="like"), "'type'"),
    ("unknown reason", lambda c: c["expect"].update(reason="BECAUSE"), "'reason'"),
    ("unknown method", lambda c: c["events"][0].update(method="pigeon"), "'method'"),
    ("event after now", lambda c: c["events"][0].update(at="2027-01-01T10:00:00+00:00"), "'at'"),
    (
        "purpose differs from topic",
        lambda c: c["message"].update(purpose="newsletter"),
        "'purpose'",
    ),
    ("missing contact kind", lambda c: c["contact"].pop("kind"), "'kind'"),
    ("missing expect", lambda c: c.pop("expect"), "'expect'"),
    ("marketing message without topic", lambda c: c["message"].update(topic=None), "'topic'"),
    ("phone not E.164", lambda c: c["contact"].update(phone="06 12 34 56 78"), "'phone'"),
    ("allowed not a boolean", lambda c: c["expect"].update(allowed="yes"), "'allowed'"),
    # RULES.md v2: an empty string is malformed input, never a value.
    ("empty category", lambda c: c["message"].update(category=""), "'category'"),
    ("empty product", lambda c: c["message"].update(product=""), "'product'"),
    ("empty profession", lambda c: c["message"].update(professions=[""]), "'professions'"),
    ("empty proof", lambda c: c["events"][0].update(proof=""), "'proof'"),
    ("empty topic", lambda c: c["events"][0].update(topic=""), "'topic'"),
    ("empty method", lambda c: c["events"][0].update(method=""), "'method'"),
    ("empty email", lambda c: c["contact"].update(email=""), "'email'"),
    ("empty profession of contact", lambda c: c["contact"].update(profession=""), "'profession'"),
    # automated only on the phone, in a message or an opt-in.
    ("automated email message", lambda c: c["message"].update(automated=True), "'automated'"),
    ("automated email opt-in", lambda c: c["events"][0].update(automated=True), "'automated'"),
    (
        "callback request by email",
        lambda c: c["events"].append(
            {"type": "callback_request", "at": "2026-02-02T10:00:00+00:00", "channel": "email"}
        ),
        "'channel'",
    ),
    (
        "pause ending before it starts",
        lambda c: c["events"].append(
            {
                "type": "pause",
                "at": "2026-02-02T10:00:00+00:00",
                "channel": "*",
                "until": "2026-02-02T09:59:59+00:00",
            }
        ),
        "'until'",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize("label, mutate, field", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_file_exits_2_naming_case_and_field(book, write, capsys, label, mutate, field):
    mutate(_case(book))
    assert _run(write(book)) == 2
    err = capsys.readouterr().err
    assert "b2c-opt-in" in err
    assert field in err


@pytest.mark.django_db
def test_malformed_file_runs_nothing(book, write, capsys):
    broken = copy.deepcopy(book)
    broken["cases"][-1]["message"]["channel"] = "fax"
    assert _run(write(broken), "--json") == 2
    assert capsys.readouterr().out == ""


@pytest.mark.django_db
def test_wrong_format_and_unreadable_file_exit_2(book, write, tmp_path):
    book["format"] = "casebook/2"
    assert _run(write(book)) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert _run(bad) == 2
    assert _run(tmp_path / "missing.json") == 2


@pytest.mark.django_db
def test_file_settings_change_the_rules(book, write, capsys):
    # With a one-year retention, a prospect collected in January 2025 has expired.
    book["settings"]["retention_years"] = 1
    case = _case(book)
    case["contact"]["collected_at"] = "2025-01-10T10:00:00+00:00"
    case["events"][0]["at"] = "2025-02-01T10:00:00+00:00"
    case["expect"] = {"allowed": False, "reason": "RETENTION_EXPIRED"}
    book["cases"] = [case]
    assert _run(write(book), "--json") == 0


@pytest.mark.django_db
def test_case_now_overrides_file_now(book, write):
    case = _case(book, "paused")
    # Before the pause ends the person is paused; the public case expects PAUSED at the file's now.
    book["cases"] = [case]
    assert _run(write(book)) == 0
    until = next(e["until"] for e in case["events"] if e["type"] == "pause")
    case["now"] = until  # "until > now" is false at the very end: consent applies again
    case["expect"] = {"allowed": True, "reason": "OPT_IN"}
    assert _run(write(book)) == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b["catalog"].update(dvd=""), "'catalog'"),
        (lambda b: b["catalog"].update({"": "culture"}), "'catalog'"),
        (lambda b: b["settings"].update(generic_local_parts=["info", ""]), "'generic_local_parts'"),
    ],
    ids=["empty family", "empty category", "empty generic local part"],
)
def test_empty_strings_at_the_top_of_the_file_exit_2(book, write, capsys, mutate, field):
    mutate(book)
    assert _run(write(book)) == 2
    assert field in capsys.readouterr().err


@pytest.mark.django_db
def test_a_pause_until_its_own_instant_is_a_resume(book, write):
    case = _case(book)
    case["events"] += [
        {"type": "pause", "at": "2026-02-02T10:00:00+00:00", "channel": "*",
         "until": "2027-02-02T10:00:00+00:00"},
        {"type": "pause", "at": "2026-02-03T10:00:00+00:00", "channel": "*",
         "until": "2026-02-03T10:00:00+00:00"},
    ]  # fmt: skip
    book["cases"] = [case]
    assert _run(write(book)) == 0
