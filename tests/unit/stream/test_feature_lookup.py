import pandas as pd

from stream.feature_lookup import CachedFeatureLookup


class FakeSource:
    def __init__(self):
        self.calls = []

    def features(self, network, processing_date, window_days, addresses=None):
        self.calls.append((network, processing_date.isoformat(), window_days, tuple(addresses)))
        known = [a for a in addresses if a != "0xnone"]
        return pd.DataFrame({"network": network, "processing_date": processing_date, "window_days": window_days,
                             "address": known, "degree_in": [float(len(a)) for a in known]})


def test_one_query_per_batch_key_then_cache_hits():
    source, now = FakeSource(), [0.0]
    lookup = CachedFeatureLookup(source, max_entries=10, ttl=60, clock=lambda: now[0])
    keys = [("eth", "2025-01-02", 7, "0xa"), ("eth", "2025-01-02", 7, "0xbb"),
            ("eth", "2025-01-03", 7, "0xa"), ("eth", "2025-01-02", 7, "0xnone")]
    frame = lookup.lookup(keys)
    assert len(source.calls) == 2  # one per (network, date, window)
    assert sorted(frame["address"]) == ["0xa", "0xa", "0xbb"]
    lookup.lookup(keys)
    assert len(source.calls) == 2 and lookup.hits == 4  # absent addresses are cached too
    now[0] = 61.0
    lookup.lookup(keys[:1])
    assert len(source.calls) == 3  # expired


def test_cache_is_bounded():
    lookup = CachedFeatureLookup(FakeSource(), max_entries=3, ttl=60)
    lookup.lookup([("eth", "2025-01-02", 7, f"0x{i}") for i in range(10)])
    assert len(lookup._cache) == 3


def test_no_rows_at_all_is_an_answer_not_an_error():
    class Empty:
        calls = 0

        def features(self, network, processing_date, window_days, addresses=None):
            Empty.calls += 1
            return pd.DataFrame()  # what an empty query can return: no columns

    lookup = CachedFeatureLookup(Empty())
    frame = lookup.lookup([("eth", "2025-01-02", 7, "0xa")])
    assert len(frame) == 0 and list(frame.columns) == ["network", "processing_date", "window_days", "address"]
    lookup.lookup([("eth", "2025-01-02", 7, "0xa")])
    assert Empty.calls == 1  # the absence is cached
