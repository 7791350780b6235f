"""``consents.collector``: the cyclic collector relaxed while a large batch is built."""

import gc

import pytest

from consents.collector import COLLECT_EVERY, collecting_less


def test_the_cycle_collector_runs_less_often_in_the_block_and_is_restored():
    before = gc.get_threshold()
    with collecting_less():
        assert gc.get_threshold() == (COLLECT_EVERY, *before[1:])
        with collecting_less(every=1000):  # an outer, larger setting is kept
            assert gc.get_threshold()[0] == COLLECT_EVERY
        assert gc.get_threshold()[0] == COLLECT_EVERY
    assert gc.get_threshold() == before
    with pytest.raises(ValueError), collecting_less():
        raise ValueError
    assert gc.get_threshold() == before
    gc.set_threshold(0, *before[1:])  # automatic passes turned off: left off
    try:
        with collecting_less():
            assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)
