"""Address features for alerts that arrive without them: one query per batch key, through a
bounded, expiring cache (features of a (network, date, window, address) rarely change, but a
re-ingest may change them, hence the TTL). An address with no row is cached as absent too."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import pandas as pd
from cachetools import TTLCache

FeatureKey = tuple[str, str, int, str]  # network, processing_date (ISO), window_days, address
KEY_NAMES = ("network", "processing_date", "window_days", "address")
_ABSENT: dict = {}


class FeatureSource(Protocol):
    def features(self, network: str, processing_date: dt.date, window_days: int,
                 addresses: Sequence[str] | None = None) -> pd.DataFrame: ...


class CachedFeatureLookup:
    def __init__(self, source: FeatureSource, max_entries: int = 100_000, ttl: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self._cache: TTLCache | None = (
            TTLCache(maxsize=max_entries, ttl=ttl, timer=clock) if max_entries > 0 and ttl > 0 else None)
        self.hits = 0
        self.misses = 0
        self.queries = 0

    def lookup(self, keys: Sequence[FeatureKey]) -> pd.DataFrame:
        """Feature rows (key columns + features) for the keys that have one."""
        rows: dict[FeatureKey, dict] = {}
        missing: dict[tuple[str, str, int], set[str]] = {}
        cache = self._cache
        for key in dict.fromkeys(keys):
            row = cache.get(key) if cache is not None else None
            if row is None:
                self.misses += 1
                missing.setdefault(key[:3], set()).add(key[3])
            else:
                self.hits += 1
                if row is not _ABSENT:
                    rows[key] = row
        for (network, date, window), addresses in missing.items():
            frame = self.source.features(network, dt.date.fromisoformat(date), window, sorted(addresses))
            self.queries += 1
            # An empty result may come back without columns at all: then nothing was found.
            returned = frame["address"].astype(str).tolist() if "address" in frame else []
            columns = [c for c in frame.columns if c not in KEY_NAMES]
            values = frame[columns].to_dict("records") if returned else []
            for address, value in zip(returned, values, strict=True):
                rows[(network, date, window, address)] = value
                if cache is not None:
                    cache[(network, date, window, address)] = value
            if cache is not None:
                for address in addresses.difference(returned):
                    cache[(network, date, window, address)] = _ABSENT
        if not rows:
            return pd.DataFrame(columns=list(KEY_NAMES))
        keys_frame = pd.DataFrame(list(rows), columns=list(KEY_NAMES))
        return pd.concat([keys_frame, pd.DataFrame(list(rows.values()))], axis=1)
