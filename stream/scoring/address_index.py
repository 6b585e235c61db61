"""Row numbers of addresses, for the address-feature cache: one sorted array of fixed-width bytes
and the row of each, searched with :func:`numpy.searchsorted`.

A dict of str → int held the same thing as Python objects: measured, 75,000 addresses of 42
characters took 10.6 MB of them, spread over the small-object allocator's arenas, where the
objects that outlive a cached key pin its arenas after it expires. Here the same addresses take
3.7 MB in two buffers the C allocator hands back when the key goes.

numpy pads fixed-width bytes with NULs and ignores trailing ones when comparing, so every address
is stored as its UTF-8 bytes followed by ``\\x01``: two values are equal exactly when the
addresses are, whatever characters (NUL included) the addresses hold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_END = b"\x01"


def _encoded(addresses: Sequence[str]) -> list[bytes]:
    return [a.encode("utf-8", "surrogatepass") + _END for a in addresses]


class AddressIndex:
    def __init__(self, addresses: Sequence[str] = ()) -> None:
        """``addresses[i]`` is row i; the addresses are distinct."""
        self._sorted = np.empty(0, "S1")
        self._rows = np.empty(0, np.int64)
        self._count = 0
        if len(addresses):
            self.add(addresses)

    def __len__(self) -> int:
        return self._count

    def add(self, addresses: Sequence[str]) -> None:
        """The next rows, in order: addresses not in the index yet (the caller asks only for
        those)."""
        if not len(addresses):
            return
        new = np.array(_encoded(addresses), dtype=np.bytes_)
        width = max(self._sorted.dtype.itemsize, new.dtype.itemsize)
        order = np.argsort(new, kind="stable")
        new, rows = new[order].astype(f"S{width}"), (order + self._count).astype(np.int64)
        current = self._sorted.astype(f"S{width}", copy=False)
        # Both sorted: one merge, linear in the index's size (a partial key grows every batch).
        at = np.searchsorted(current, new)
        self._sorted = np.insert(current, at, new)
        self._rows = np.insert(self._rows, at, rows)
        self._count += len(addresses)

    def positions(self, addresses: Sequence[str]) -> np.ndarray:
        """The row of each address, -1 for one not in the index."""
        out = np.full(len(addresses), -1, dtype=np.int64)
        if not self._count or not len(addresses):
            return out
        encoded = _encoded(addresses)
        wanted = np.array(encoded, dtype=np.bytes_)
        width = self._sorted.dtype.itemsize
        fits = True
        if wanted.dtype.itemsize > width:
            # A longer value is cut to the width below and could then match its prefix.
            fits = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)) <= width
            wanted = wanted.astype(f"S{width}")
        at = np.minimum(np.searchsorted(self._sorted, wanted), self._count - 1)
        found = (self._sorted[at] == wanted) & fits
        out[found] = self._rows[at[found]]
        return out
