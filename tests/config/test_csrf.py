"""``config.csrf.token`` gives what Django's ``get_token`` gives: the cookie's secret, masked with
new random characters each time, accepted by the CSRF check."""

from __future__ import annotations

from collections import Counter

from django.middleware.csrf import (
    CSRF_ALLOWED_CHARS,
    CSRF_TOKEN_LENGTH,
    _unmask_cipher_token,
    get_token,
)
from django.test import RequestFactory

from config import csrf

SECRET = "abcdefghijklmnopqrstuvwxyzABCDEF"


def test_the_token_unmasks_to_the_cookies_secret_and_renews_the_cookie() -> None:
    request = RequestFactory().get("/")
    request.META["CSRF_COOKIE"] = SECRET
    tokens = {csrf.token(request) for _ in range(50)}
    assert len(tokens) == 50  # a new mask each time
    for token in tokens:
        assert len(token) == CSRF_TOKEN_LENGTH
        assert set(token) <= set(CSRF_ALLOWED_CHARS)
        assert _unmask_cipher_token(token) == SECRET
    assert request.META["CSRF_COOKIE_NEEDS_UPDATE"] is True


def test_without_a_cookie_django_makes_one() -> None:
    request = RequestFactory().get("/")
    token = csrf.token(request)
    assert _unmask_cipher_token(token) == request.META["CSRF_COOKIE"]
    assert request.META["CSRF_COOKIE_NEEDS_UPDATE"] is True


def test_a_token_from_django_and_one_from_here_name_the_same_secret() -> None:
    request = RequestFactory().get("/")
    request.META["CSRF_COOKIE"] = SECRET
    assert _unmask_cipher_token(get_token(request)) == _unmask_cipher_token(csrf.token(request))


def test_the_mask_draws_every_character_about_equally() -> None:
    counts = Counter(csrf.random_chars(62 * 2000))
    assert set(counts) == set(CSRF_ALLOWED_CHARS)
    # 2,000 expected each (standard deviation about 44). Taking byte % 62 of every byte would
    # favour the first 8 characters (5 bytes in 256 against 4): about 2,420 each.
    assert max(counts.values()) < 2200 and min(counts.values()) > 1800
