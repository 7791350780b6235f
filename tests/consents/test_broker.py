"""The broker transport keeps one Redis client per connection pool for publishing."""

from __future__ import annotations

import pytest

from config.celery import app

pytestmark = pytest.mark.redis


def test_publishing_reuses_one_client_per_pool(settings) -> None:
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        assert type(channel).__module__ == "config.broker"
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        channel._pool = None  # as after a reconnection: a new pool, a new client
        with channel.conn_or_acquire() as third:
            assert third is not first
            assert third.connection_pool is channel.pool
