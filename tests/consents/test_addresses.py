"""``normalize_email``'s shortcut for plain addresses gives what the full checks give, and refuses
what they refuse."""

from __future__ import annotations

import random

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from consents.services import addresses
from consents.services.addresses import _PLAIN_EMAIL, _normalize_email_checked, normalize_email


def _outcome(function, raw):
    try:
        return "ok", function(raw)
    except ValidationError as exc:
        return "refused", exc.message_dict


def _checked(raw):
    return _normalize_email_checked((raw or "").strip())


CASES = [
    "claire.martin@example.com",
    "Claire.Martin@Example.COM",
    "  claire@example.com \n",
    "\u00a0claire@example.com\u2003",
    "a@b.co",
    "a@b.c",
    "a@b",
    "a@localhost",
    "a@127.0.0.1",
    "a@[127.0.0.1]",
    "a@[::1]",
    "a@example.com.",
    "a@.example.com",
    "a@example..com",
    "a@-example.com",
    "a@example-.com",
    "a@ex-ample.com",
    "a@ex--ample.com",
    "a@example.c0m",
    "a@example.xn--p1ai",
    "a@xn--bcher-kva.example",
    "a@bücher.example",
    "a@BÜCHER.example",
    "a@example.рф",
    "a@EXAMPLE.РФ",
    "\u0131@example.com",  # dotless i: the validator's ignore-case class accepts it
    "\u017f@example.com",  # long s, likewise
    "\u212a@example.com",  # Kelvin sign
    "é@example.com",
    ".a@example.com",
    "a.@example.com",
    "a..b@example.com",
    "a+tag@example.com",
    "a_b-c~d!e#f$g%h&i'j*k/l=m?n^o`p{q|r}s@example.com",
    '"quoted local"@example.com',
    '"a@b"@example.com',
    "a@b@example.com",
    "@example.com",
    "a@",
    "",
    "   ",
    "no-at-sign",
    "a b@example.com",
    "a@exa mple.com",
    "a@example.com\x00",
    "a\tb@example.com",
    "a@" + "x" * 63 + ".com",
    "a@" + "x" * 64 + ".com",
    "a@example." + "c" * 63,
    "a@example." + "c" * 64,
    "a@" + ".".join(["x" * 60] * 4) + ".com",
    "l" * 64 + "@example.com",
    "l" * 240 + "@example.com",
    "l" * 241 + "@example.com",
    "l" * 242 + "@example.com",
    "l" * 300 + "@example.com",
    "l" * 230 + "@bücher.example",
    "a@EXAMPLE.com",
    "A@example.COM",
    "a@123.example.com",
    "a@example.123",
    "a@sub.domain.example.co.uk",
    "a@xn--.com",
    "a@-.com",
]


@pytest.mark.parametrize("raw", CASES)
def test_same_result_as_the_full_checks(raw):
    assert _outcome(normalize_email, raw) == _outcome(_checked, raw)


def test_none_refused_as_before():
    assert _outcome(normalize_email, None) == _outcome(_checked, None)


def test_shortcut_taken_for_plain_addresses():
    # The shortcut is what saves the time: plain addresses of an export take it.
    assert _PLAIN_EMAIL.fullmatch("claire.martin.12@example.com")
    assert _PLAIN_EMAIL.fullmatch("Claire+news@Mail.Example.FR")
    assert not _PLAIN_EMAIL.fullmatch("a@bücher.example")
    assert not _PLAIN_EMAIL.fullmatch("\u0131@example.com")


ALPHABET = "aZ09.-_+@'\"!#$%&*/=?^`{|}~ \t\u00a0\u0131\u017f\u212aéü[]:xn-"


def test_random_addresses_built_from_awkward_characters():
    rng = random.Random(20261130)
    for _ in range(20_000):
        local = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 8)))
        labels = [
            "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 6)))
            for _ in range(rng.randrange(1, 4))
        ]
        raw = f"{local}@{'.'.join(labels)}"
        assert _outcome(normalize_email, raw) == _outcome(_checked, raw), raw


@settings(max_examples=500, deadline=None)
@given(
    st.from_regex(
        r"[-a-zA-Z0-9.+_'!#~\u0131é]{0,12}@[-a-zA-Z0-9.\u00fc]{0,20}(\.[a-zA-Z]{0,4})?",
        fullmatch=True,
    )
)
def test_generated_addresses(raw):
    assert _outcome(normalize_email, raw) == _outcome(_checked, raw)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_any_text(raw):
    assert _outcome(normalize_email, raw) == _outcome(_checked, raw)


def test_max_length_is_the_columns():
    assert addresses.EMAIL_MAX_LENGTH == 254
