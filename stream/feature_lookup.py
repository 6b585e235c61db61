"""Address features for alerts that arrive without them: one query per batch key, through a
bounded, expiring cache (features of a (network, date, window, address) rarely change, but a
re-ingest may change them, hence the TTL)."""

from __future__ import annotations

import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

import pandas as pd

FeatureKey = tuple[str, str, int, str]  # network, processing_date (ISO), window_days, address
KEY_NAMES = ("network", "processing_date", "window_days", "address")


class FeatureSource(Protocol):
    def features(self, network: str, processing_date: dt.date, window_days: int,
                 addresses: Sequence[str] | None = None) -> pd.DataFrame: ...


class CachedFeatureLookup:
    def __init__(self, source: FeatureSource, max_entries: int = 100_000, ttl: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.max_entries = max_entries
        self.ttl = ttl
        self.clock = clock
        self._cache: OrderedDict[FeatureKey, tuple[float, dict | None]] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.queries = 0

    def _get(self, key: FeatureKey, now: float) -> tuple[bool, dict | None]:
        entry = self._cache.get(key)
        if entry is None or now - entry[0] > self.ttl:
            return False, None
        self._cache.move_to_end(key)
        return True, entry[1]

    def _put(self, key: FeatureKey, row: dict | None, now: float) -> None:
        self._cache[key] = (now, row)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    def lookup(self, keys: Sequence[FeatureKey]) -> pd.DataFrame:
        """Feature rows (key columns + features) for the keys that have one."""
        now = self.clock()
        rows: dict[FeatureKey, dict] = {}
        missing: dict[tuple[str, str, int], set[str]] = {}
        for key in dict.fromkeys(keys):
            found, row = self._get(key, now)
            if found:
                self.hits += 1
                if row is not None:
                    rows[key] = row
            else:
                self.misses += 1
                missing.setdefault(key[:3], set()).add(key[3])
        for (network, date, window), addresses in missing.items():
            frame = self.source.features(network, dt.date.fromisoformat(date), window, sorted(addresses))
            self.queries += 1
            # An empty result may come back without columns at all: then nothing was found.
            returned = frame["address"].astype(str).tolist() if "address" in frame else []
            columns = [c for c in frame.columns if c not in KEY_NAMES]
            values = frame[columns].to_dict("records") if returned else []
            for address, value in zip(returned, values, strict=True):
                rows[(network, date, window, address)] = value
                self._put((network, date, window, address), value, now)
            for address in addresses.difference(returned):
                self._put((network, date, window, address), None, now)  # absent: remember that too
        if not rows:
            return pd.DataFrame(columns=list(KEY_NAMES))
        keys_frame = pd.DataFrame(list(rows), columns=list(KEY_NAMES))
        return pd.concat([keys_frame, pd.DataFrame(list(rows.values()))], axis=1)
