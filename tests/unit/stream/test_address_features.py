"""The address-feature cache against a fake store: a batch key's whole table in one query, a key
too large for that read address by address, expiry, the row bound, and no cache at all."""

import datetime as dt

import numpy as np
import pytest

from stream.scoring.address_features import AddressFeatureCache

DAY, NEXT = dt.date(2025, 1, 2), dt.date(2025, 1, 3)


class FakeSource:
    """Each key holds ``size`` addresses 0x0.. (feature degree_in = the address's number)."""

    def __init__(self, size: int = 5):
        self.size, self.calls = size, []

    def feature_rows(self, network, processing_date, window_days, addresses=None, limit=0):
        self.calls.append((processing_date, None if addresses is None else tuple(addresses), limit))
        everyone = [f"0x{i}" for i in range(self.size)]
        if addresses is None:
            if limit and self.size > limit:
                return None
            addresses = everyone
        found = [a for a in addresses if a in everyone]
        matrix = np.array([[float(a[2:]), 0.5] for a in found]).reshape(-1, 2)
        return found, ["degree_in", "pagerank"], matrix


def test_a_key_is_read_whole_once_then_every_address_is_a_hit():
    source, now = FakeSource(), [0.0]
    cache = AddressFeatureCache(source, max_rows=100, ttl=60, clock=lambda: now[0])
    keys = [("eth", DAY, 7), ("eth", DAY, 7), ("eth", NEXT, 7), ("eth", DAY, 7)]
    rows = cache.rows(keys, ["0x1", "0x4", "0x1", "0xnone"], ["pagerank", "degree_in", "absent"])
    assert [c[1] for c in source.calls] == [None, None]  # one whole read per key
    assert rows[:3, :2].tolist() == [[0.5, 1.0], [0.5, 4.0], [0.5, 1.0]]
    assert np.isnan(rows[3]).all() and np.isnan(rows[:, 2]).all()
    again = cache.rows(keys, ["0x1", "0x4", "0x1", "0xnone"], ["pagerank", "degree_in", "absent"])
    assert len(source.calls) == 2 and np.array_equal(again, rows, equal_nan=True)
    now[0] = 61.0
    cache.rows(keys[:1], ["0x1"], ["degree_in"])
    assert len(source.calls) == 3  # expired


def test_a_key_too_large_to_read_whole_is_read_address_by_address():
    source = FakeSource(size=500)
    cache = AddressFeatureCache(source, max_rows=100, ttl=60)  # whole keys up to 50 rows
    first = cache.rows([("eth", DAY, 7)] * 3, ["0x7", "0x9", "0xnone"], ["degree_in"])
    assert first[:2, 0].tolist() == [7.0, 9.0] and np.isnan(first[2, 0])
    assert source.calls == [(DAY, None, 50), (DAY, ("0x7", "0x9", "0xnone"), 0)]
    cache.rows([("eth", DAY, 7)] * 3, ["0x9", "0x11", "0xnone"], ["degree_in"])
    assert source.calls[-1] == (DAY, ("0x11",), 0)  # known rows and known absences not asked again


def test_the_cache_holds_at_most_max_rows():
    source = FakeSource(size=40)
    cache = AddressFeatureCache(source, max_rows=100, ttl=60)
    for day in range(5):
        cache.rows([("eth", DAY + dt.timedelta(days=day), 7)], ["0x1"], ["degree_in"])
    assert sum(len(entry) for entry in cache._cache.values()) <= 100
    assert len(cache._cache) == 2


@pytest.mark.parametrize("max_rows", [0])
def test_no_cache_reads_every_time_and_no_rows_is_an_answer(max_rows):
    source = FakeSource()
    cache = AddressFeatureCache(source, max_rows=max_rows)
    rows = cache.rows([("eth", DAY, 7)], ["0xnone"], ["degree_in"])
    assert np.isnan(rows).all()
    cache.rows([("eth", DAY, 7)], ["0xnone"], ["degree_in"])
    assert [c[1] for c in source.calls] == [("0xnone",), ("0xnone",)]


def test_a_new_key_is_read_whole_in_the_background_and_meanwhile_address_by_address():
    import threading

    class SlowWholeReads(FakeSource):
        def __init__(self):
            super().__init__(size=30)
            self.release = threading.Event()

        def feature_rows(self, network, processing_date, window_days, addresses=None, limit=0):
            if addresses is None:
                self.release.wait(5)
            return super().feature_rows(network, processing_date, window_days, addresses, limit)

    foreground, background = FakeSource(size=30), SlowWholeReads()
    cache = AddressFeatureCache(foreground, max_rows=100, ttl=60, whole_key_source=background)
    key = [("eth", DAY, 7)]
    assert cache.rows(key, ["0x3"], ["degree_in"]).tolist() == [[3.0]]
    assert foreground.calls == [(DAY, ("0x3",), 0)]  # the stream did not wait for the whole key
    background.release.set()
    cache._reading[key[0]].result(5)
    assert cache.rows(key, ["0x5"], ["degree_in"]).tolist() == [[5.0]]
    assert cache.rows(key * 2, ["0x7", "0x9"], ["degree_in"]).tolist() == [[7.0], [9.0]]
    assert foreground.calls == [(DAY, ("0x3",), 0)]  # the whole key arrived: hits from then on
    assert [c[1] for c in background.calls] == [None]
