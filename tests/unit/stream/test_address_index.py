"""The address index answers as a dict of address → row would, for addresses that fixed-width
bytes could confuse: prefixes, trailing NULs, longer than any stored, non-ASCII, empty."""

import random

import numpy as np

from stream.scoring.address_index import AddressIndex

TRICKY = ["", "a", "a\x00", "a\x00\x00", "\x00", "ab", "abc", "0x1", "0x12", "0x1\x01",
          "bc1qé", "адрес", "\U0001f600", "a" * 90]


def _random_addresses(rng: random.Random, n: int) -> list[str]:
    alphabet = "0123456789abcdefxé\x00"
    return list({"".join(rng.choices(alphabet, k=rng.randint(0, 50))) for _ in range(n)})


def _expected(rows: dict[str, int], asked: list[str]) -> list[int]:
    return [rows.get(a, -1) for a in asked]


def test_rows_of_addresses_added_at_once_and_in_pieces_match_a_dict():
    rng = random.Random(7)
    stored = list(dict.fromkeys(TRICKY[::2] + _random_addresses(rng, 3000)))
    asked = TRICKY + _random_addresses(rng, 500) + stored[::7] + [s + "x" for s in stored[:50]]
    rows = {a: i for i, a in enumerate(stored)}

    whole = AddressIndex(stored)
    assert len(whole) == len(stored)
    assert whole.positions(asked).tolist() == _expected(rows, asked)

    pieces = AddressIndex()
    start = 0
    for size in (1, 0, 17, 400, 5, 2000):  # widths grow and shrink between pieces
        pieces.add(stored[start:start + size])
        start += size
        known = {a: i for a, i in rows.items() if i < start}
        assert pieces.positions(asked).tolist() == _expected(known, asked)
    pieces.add(stored[start:])
    assert pieces.positions(asked).tolist() == _expected(rows, asked)


def test_an_empty_index_and_an_empty_question():
    assert AddressIndex().positions(["a", ""]).tolist() == [-1, -1]
    assert AddressIndex(["a"]).positions([]).dtype == np.int64
    assert AddressIndex(["a"]).positions([]).tolist() == []


def test_a_longer_address_never_matches_its_stored_prefix():
    index = AddressIndex(["0x1234"])
    asked = ["0x12345", "0x1234\x00", "0x1234\x01", "0x1234\x01z", "0x123", "0x1234"]
    assert index.positions(asked).tolist() == [-1, -1, -1, -1, -1, 0]
