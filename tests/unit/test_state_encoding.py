"""State values are written as orjson's text, right-sized (orjson 3.12+ hands back its 4 KiB
working buffer as the bytes object; a checkpoint holds every changed value at once)."""

from __future__ import annotations

import tracemalloc

import orjson

from tables.checkpoint import encode


def test_encode_writes_orjsons_text() -> None:
    values = [0, 1, -5, 2**63 - 1, -(2**63), {"s": "J", "t": 1, "v": "v1"}, [1, 2.5], "x", 1.5]
    for value in values:
        assert encode(value) == orjson.dumps(value)
    assert encode(True) == b"true" and encode(None) == b"null"


def test_encoded_values_hold_about_their_own_length() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [encode({"s": "J", "t": 1_764_480_000_000 + i, "dl": i}) for i in range(2_000)]
        kept += [encode(1_764_480_000_000 + i) for i in range(2_000)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # ~45 and ~13 bytes of text plus the bytes object's header (33) and the list's pointers
    assert held < len(kept) * 120, held
