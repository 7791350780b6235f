"""Instants read by psycopg's compiled loader are those Django's own loader reads."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg.pq import Format

from consents import instants

SAMPLE = """
SELECT v FROM (VALUES
    ('2026-12-01 16:20:12.584941+00'::timestamptz), ('1999-01-01 00:00:00+05:30'),
    ('2026-03-29 02:30:00+02'), ('2026-10-25 02:30:00+01'), (NULL), ('0001-01-01 00:00:00+00'),
    ('9999-12-31 23:59:59.999999+00'), ('2000-02-29 12:00:00.000001-09:30')
) AS t(v)
"""


@pytest.mark.postgres
def test_the_compiled_loader_reads_what_djangos_reads(db: Any) -> None:
    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(instants._TIMESTAMPTZ, Format.TEXT)
    assert loader is instants.UtcInstantLoader  # installed on the connection
    with connection.cursor() as cursor:
        cursor.execute(SAMPLE)
        ours = cursor.fetchall()
    with connection.cursor() as cursor:
        register_tzloader(connection.timezone, cursor.cursor)  # Django's, on this cursor only
        cursor.execute(SAMPLE)
        djangos = cursor.fetchall()
    assert ours == djangos
    for (a,), (b,) in zip(ours, djangos, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.tzinfo is b.tzinfo is dt.UTC and a.utcoffset() == b.utcoffset()


@pytest.mark.postgres
def test_an_instant_comes_back_as_it_was_written(make_contact: Any) -> None:
    at = dt.datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=ZoneInfo("Europe/Paris"))
    contact = make_contact(collected_at=at)
    read = type(contact).objects.get(pk=contact.pk).collected_at
    assert read == at and read.tzinfo is dt.UTC


def test_django_keeps_its_loader_where_the_compiled_one_would_differ() -> None:
    utc = SimpleNamespace(
        vendor="postgresql",
        timezone=dt.UTC,
        connection=SimpleNamespace(info=SimpleNamespace(parameter_status=lambda _: "UTC")),
    )
    assert instants.usable(utc) is (instants._COMPILED.__module__.startswith("psycopg_binary"))
    paris = SimpleNamespace(**{**vars(utc), "timezone": ZoneInfo("Europe/Paris")})
    assert not instants.usable(paris)
    naive = SimpleNamespace(**{**vars(utc), "timezone": None})  # USE_TZ off
    assert not instants.usable(naive)
    other_session = SimpleNamespace(
        **{
            **vars(utc),
            "connection": SimpleNamespace(
                info=SimpleNamespace(parameter_status=lambda _: "Europe/Paris")
            ),
        }
    )
    assert not instants.usable(other_session)
    assert not instants.usable(SimpleNamespace(**{**vars(utc), "vendor": "sqlite"}))
