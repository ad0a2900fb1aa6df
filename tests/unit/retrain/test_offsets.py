"""A partition's committed offset never passes a request whose fate is not durable."""

from __future__ import annotations

from retrain.offsets import PartitionOffsets


def test_commits_only_past_settled_records() -> None:
    p = PartitionOffsets()
    assert p.committable() is None
    p.seen(10, 0)
    assert p.committable() == 11
    p.seen(11, 1)
    p.seen(12, 2)
    p.seen(13, 0)
    assert p.committable() == 11
    p.settled(12)
    assert p.committable() == 11
    p.settled(11)
    assert p.committable() == 12
    p.settled(12)
    assert p.committable() == 14
