"""State values are written as orjson's text, and a checkpoint keeps none of it: orjson 3.12+
hands back its ~4 KiB working buffer as the bytes object, so a checkpoint that held every
encoded value at once took ~4 KiB per changed key (800 MB for 200,000 index entries)."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

import orjson

from tables.checkpoint import CheckpointStore, encode
from tests.unit.faultkit import Disk, FakeGroup, FakeKafka, Faults


def test_encode_writes_orjsons_text() -> None:
    values = [0, 1, -5, 2**63 - 1, -(2**63), {"s": "J", "t": 1, "v": "v1"}, [1, 2.5], "x", 1.5]
    for value in values:
        assert encode(value) == orjson.dumps(value)
    assert encode(True) == b"true" and encode(None) == b"null"


def test_a_checkpoint_holds_no_encoded_value_while_it_waits(tmp_path: Path) -> None:
    faults = Faults()
    kafka = FakeKafka(faults, partitions=1)
    store = CheckpointStore(
        changelog_topic="changelog",
        db_for=Disk(tmp_path, faults).db_for,
        producer=kafka.producer,
        commit=FakeGroup(faults).commit,
    )
    part = store.partition(0)
    keys = 2_000
    for i in range(keys):
        part.txn.set(b"p%06d" % i, {"s": "J", "t": 1_764_480_000_000 + i, "dl": i})
    part.mark("predictions", 0)

    async def staged_size() -> int:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            staged = await store._stage(part)
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert staged.changes == keys
        return held

    held = asyncio.run(staged_size())
    # the batch's copies: ~45 bytes of text, a bytes header (33) and a tuple each; 4 KiB buffers
    # kept would be 8 MB
    assert held < keys * 250, held
    # a fresh checkpoint of the same changes sends every value as orjson's text, then the marker
    asyncio.run(store.checkpoint())
    log = kafka.logs[("changelog", 0)]
    assert len(log) == keys + 1
    sent = dict(log)
    assert sent[b"p000005"] == orjson.dumps({"s": "J", "t": 1_764_480_000_005, "dl": 5})
    assert len(sent) == keys + 1  # and the marker
