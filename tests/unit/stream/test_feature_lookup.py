import numpy as np
import pandas as pd

from stream.feature_lookup import CachedFeatureLookup


def _frame(rows) -> pd.DataFrame:
    block = rows.block()
    return pd.concat([block.keys, pd.DataFrame(block.matrix, columns=list(block.columns))], axis=1)


class FakeSource:
    def __init__(self):
        self.calls = []

    def feature_rows(self, network, processing_date, window_days, addresses):
        self.calls.append((network, processing_date.isoformat(), window_days, tuple(addresses)))
        known = [a for a in addresses if a != "0xnone"]
        return known, ["degree_in", "pagerank"], np.array([[float(len(a)), 0.5] for a in known]).reshape(-1, 2)


def test_one_query_per_batch_key_then_cache_hits():
    source, now = FakeSource(), [0.0]
    lookup = CachedFeatureLookup(source, max_entries=10, ttl=60, clock=lambda: now[0])
    keys = [("eth", "2025-01-02", 7, "0xa"), ("eth", "2025-01-02", 7, "0xbb"),
            ("eth", "2025-01-03", 7, "0xa"), ("eth", "2025-01-02", 7, "0xnone")]
    frame = _frame(lookup.lookup(keys))
    assert len(source.calls) == 2  # one per (network, date, window)
    assert sorted(frame["address"]) == ["0xa", "0xa", "0xbb"]
    assert list(frame.columns) == ["network", "processing_date", "window_days", "address", "degree_in",
                                   "pagerank"]
    assert frame.set_index(["processing_date", "address"]).loc[("2025-01-02", "0xbb"), "degree_in"] == 4.0
    again = _frame(lookup.lookup(keys))
    assert len(source.calls) == 2 and lookup.hits == 4  # absent addresses are cached too
    assert again.sort_values(["processing_date", "address"]).to_numpy().tolist() == \
        frame.sort_values(["processing_date", "address"]).to_numpy().tolist()
    now[0] = 61.0
    lookup.lookup(keys[:1])
    assert len(source.calls) == 3  # expired


def test_cache_is_bounded():
    lookup = CachedFeatureLookup(FakeSource(), max_entries=3, ttl=60)
    lookup.lookup([("eth", "2025-01-02", 7, f"0x{i}") for i in range(10)])
    assert len(lookup._cache) == 3


def test_no_cache_when_sized_zero_and_no_rows_is_an_answer():
    source = FakeSource()
    lookup = CachedFeatureLookup(source, max_entries=0)
    frame = _frame(lookup.lookup([("eth", "2025-01-02", 7, "0xnone")]))
    assert len(frame) == 0 and list(frame.columns) == ["network", "processing_date", "window_days", "address"]
    lookup.lookup([("eth", "2025-01-02", 7, "0xnone")])
    assert len(source.calls) == 2
