"""Address features for alerts that arrive without them: one query per batch key for the
addresses not cached, through a bounded, expiring cache (features of a (network, date, window,
address) rarely change, but a re-ingest may change them, hence the TTL). A row is cached as a
float64 vector beside its column list, not as a dict: a hundred thousand rows stay tens of MB.
An address with no row is cached as absent too."""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
from cachetools import TTLCache

from shared.features import FeatureBlock

FeatureKey = tuple[str, str, int, str]  # network, processing_date (ISO), window_days, address
KEY_NAMES = ("network", "processing_date", "window_days", "address")
_ABSENT = ("absent",)  # cached: this address has no feature row


@dataclass(frozen=True)
class FeatureRows:
    """Feature rows as a float64 matrix beside their keys: cheap to stack, one frame at the end."""

    keys: list[FeatureKey]
    columns: list[str]
    matrix: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    @staticmethod
    def stack(parts: Sequence[FeatureRows]) -> FeatureRows:
        """One block over the union of the parts' columns (NaN where a part lacks one); later
        parts' rows come later, so for a key given twice the last row wins when joined."""
        parts = [p for p in parts if len(p)]
        if len(parts) == 1:
            return parts[0]
        columns = list(dict.fromkeys(c for p in parts for c in p.columns))
        position = {c: j for j, c in enumerate(columns)}
        matrix = np.full((sum(len(p) for p in parts), len(columns)), np.nan)
        row = 0
        for part in parts:
            matrix[row:row + len(part), [position[c] for c in part.columns]] = part.matrix
            row += len(part)
        return FeatureRows([k for p in parts for k in p.keys], columns, matrix)

    def block(self) -> FeatureBlock:
        """What the feature builder takes: key columns (plain objects, no per-batch string
        conversion) beside the matrix."""
        keys = list(zip(*self.keys, strict=True)) if self.keys else [(), (), (), ()]
        frame = pd.DataFrame({name: pd.Series(values, dtype=object)
                              for name, values in zip(KEY_NAMES, keys, strict=True)})
        frame["window_days"] = pd.Series(keys[2], dtype="int64")
        return FeatureBlock(frame, tuple(self.columns), self.matrix)



class FeatureSource(Protocol):
    def feature_rows(self, network: str, processing_date: dt.date, window_days: int,
                     addresses: Sequence[str]) -> tuple[list[str], list[str], np.ndarray]:
        """(addresses found, feature columns, one float64 row per address found)."""


class CachedFeatureLookup:
    def __init__(self, source: FeatureSource, max_entries: int = 100_000, ttl: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self._cache: TTLCache | None = (
            TTLCache(maxsize=max_entries, ttl=ttl, timer=clock) if max_entries > 0 and ttl > 0 else None)
        self.hits = 0

    def lookup(self, keys: Sequence[FeatureKey]) -> FeatureRows:
        """Feature rows for the keys that have one."""
        found: dict[tuple[str, ...], list[tuple[FeatureKey, np.ndarray]]] = defaultdict(list)
        missing: dict[tuple[str, str, int], list[str]] = defaultdict(list)
        cache = self._cache
        for key in dict.fromkeys(keys):
            entry = cache.get(key) if cache is not None else None
            if entry is None:
                missing[key[:3]].append(key[3])
            else:
                self.hits += 1
                if entry is not _ABSENT:
                    found[entry[0]].append((key, entry[1]))
        for (network, date, window), addresses in missing.items():
            returned, names, matrix = self.source.feature_rows(
                network, dt.date.fromisoformat(date), window, sorted(addresses))
            columns = tuple(names)
            for address, row in zip(returned, matrix, strict=True):
                key = (network, date, window, address)
                found[columns].append((key, row))
                if cache is not None:
                    cache[key] = (columns, row)
            if cache is not None:
                for address in set(addresses).difference(returned):
                    cache[(network, date, window, address)] = _ABSENT
        return FeatureRows.stack([
            FeatureRows([k for k, _ in rows], list(columns), np.vstack([r for _, r in rows]))
            for columns, rows in found.items()
        ] or [FeatureRows([], [], np.empty((0, 0)))])
