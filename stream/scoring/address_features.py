"""Address features for alerts that arrive without them, aligned with the alerts.

An upstream job loads a day's address features before its alerts stream (and a re-ingest may
replace them), so the store is read a batch key — (network, processing_date, window_days) — at a
time: the first alert of a key starts reading the key's whole feature table in a thread of its own
(its own client), and every alert of that key after it has arrived is a dictionary lookup. Until
it has, micro-batches read the addresses they need (one ``IN`` query each, for the addresses not
seen yet): a new day never stalls the stream behind the whole day's read. A key with more rows
than ``whole_key_rows`` stays read address by address, so a huge day never has to fit. Entries expire after ``ttl`` seconds (a re-ingest is seen within it),
and the cache holds at most ``max_rows`` rows over all keys (cachetools, least recently used key
out first). Rows are float64 vectors in a matrix per key, not dicts: 100,000 rows of 90 features
stay ~75 MB; their addresses are an :class:`AddressIndex`, not a dict of strings.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from cachetools import TTLCache

from stream.scoring.address_index import AddressIndex

log = logging.getLogger(__name__)
BatchKey = tuple[str, dt.date, int]  # network, processing_date, window_days
Loaded = tuple[list[str], list[str], np.ndarray] | None


class FeatureSource(Protocol):
    def feature_rows(self, network: str, processing_date: dt.date, window_days: int,
                     addresses: Sequence[str] | None = None,
                     limit: int = 0) -> tuple[list[str], list[str], np.ndarray] | None:
        """(addresses found, feature columns, one float64 row per address found); with
        ``addresses`` None the whole key, or None when it has more than ``limit`` rows."""


@dataclass
class KeyFeatures:
    """One batch key's feature rows: all of them (``whole``), or those asked for so far."""

    columns: tuple[str, ...]
    rows: AddressIndex
    matrix: np.ndarray
    whole: bool
    absent: set[str] = field(default_factory=set)  # asked for and not there (partial keys)
    too_large: bool = False  # more rows than are read whole: stays partial

    def add(self, columns: Sequence[str], addresses: Sequence[str], matrix: np.ndarray) -> None:
        if tuple(columns) != self.columns:  # the table gained a column: align to the new one
            position = {c: j for j, c in enumerate(columns)}
            widened = np.full((len(self.matrix), len(columns)), np.nan)
            widened[:, [position[c] for c in self.columns if c in position]] = \
                self.matrix[:, [j for j, c in enumerate(self.columns) if c in position]]
            self.columns, self.matrix = tuple(columns), widened
        start = len(self.matrix)
        self.matrix = np.vstack([self.matrix, matrix]) if start else matrix
        self.rows.add(addresses)  # rows start.. in order

    def __len__(self) -> int:
        return len(self.matrix)


class AddressFeatureCache:
    def __init__(self, source: FeatureSource, max_rows: int = 100_000, ttl: float = 600.0,
                 clock: Callable[[], float] = time.monotonic,
                 whole_key_source: FeatureSource | None = None) -> None:
        """``whole_key_source``: where whole keys are read from, in a thread of its own (a client
        of its own); None reads them in the caller's thread, at the key's first alert."""
        self.source = source
        self.whole_key_rows = max_rows // 2  # a key larger than this is read address by address
        self._cache: TTLCache | None = (
            TTLCache(maxsize=max_rows, ttl=ttl, timer=clock, getsizeof=lambda e: max(1, len(e)))
            if max_rows > 0 and ttl > 0 else None)
        self._whole_source = whole_key_source
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="features") if whole_key_source else None
        self._reading: dict[BatchKey, Future] = {}

    def _read_whole(self, key: BatchKey) -> Loaded:
        source = self._whole_source or self.source
        return source.feature_rows(*key, None, self.whole_key_rows)

    def _whole(self, key: BatchKey) -> KeyFeatures | None:
        """The key read whole, when that read has finished (started now when not yet asked);
        None meanwhile, or when the key is too large to read whole."""
        if self._reader is None:
            loaded = self._read_whole(key)
        else:
            reading = self._reading.get(key)
            if reading is None:
                self._reading[key] = self._reader.submit(self._read_whole, key)
                return None
            if not reading.done():
                return None
            del self._reading[key]
            try:
                loaded = reading.result()
            except Exception as exc:  # noqa: BLE001 - micro-batches read what they need meanwhile
                log.warning("features of %s not read whole (%s); reading them address by address",
                            key, exc)
                return None
        if loaded is None:
            return KeyFeatures((), AddressIndex(), np.empty((0, 0)), False, too_large=True)
        found, columns, matrix = loaded
        return KeyFeatures(tuple(columns), AddressIndex(found), matrix, True)

    def _entry(self, key: BatchKey, addresses: Sequence[str]) -> KeyFeatures:
        """The key's rows, covering ``addresses`` (those missing read now)."""
        entry = self._cache.get(key) if self._cache is not None else None
        if self._cache is not None and (entry is None or not (entry.whole or entry.too_large)):
            whole = self._whole(key)
            if whole is not None:
                entry = whole if whole.whole else (entry or whole)
                entry.too_large = entry.too_large or whole.too_large
        if entry is None:
            entry = KeyFeatures((), AddressIndex(), np.empty((0, 0)), False)
        if not entry.whole:
            unknown = entry.rows.positions(addresses) < 0
            wanted = sorted({a for a, u in zip(addresses, unknown, strict=True) if u and a not in entry.absent})
            if wanted:
                found, columns, matrix = self.source.feature_rows(*key, wanted)  # type: ignore[misc]
                entry.add(columns, found, matrix)
                entry.absent.update(set(wanted).difference(found))
        if self._cache is not None:
            try:
                self._cache[key] = entry  # (re)sized by its rows; a key larger than the cache is not kept
            except ValueError:
                pass
        return entry

    def rows(self, keys: Sequence[BatchKey], addresses: Sequence[str],
             columns: Sequence[str]) -> np.ndarray:
        """Row i: the feature row of ``addresses[i]`` in batch key ``keys[i]``, as ``columns``
        (NaN where the address has no row or the table no such column)."""
        out = np.full((len(addresses), len(columns)), np.nan)
        groups: dict[BatchKey, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        for key, members in groups.items():
            entry = self._entry(key, [addresses[i] for i in members])
            if not len(entry):
                continue
            position = {c: j for j, c in enumerate(entry.columns)}
            take = [(k, position[c]) for k, c in enumerate(columns) if c in position]
            found = entry.rows.positions([addresses[i] for i in members])
            hit = found >= 0
            if take and hit.any():
                out[np.ix_(np.asarray(members)[hit], [k for k, _ in take])] = \
                    entry.matrix[np.ix_(found[hit], [j for _, j in take])]
        return out
