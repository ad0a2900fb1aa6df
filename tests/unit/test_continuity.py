"""The continuity guard names the offsets a record skipped; the ownership guard drops records of
partitions not (or no longer) ours."""

from __future__ import annotations

from collections.abc import AsyncIterator

from agents.continuity import Continuity, RawRecord
from agents.ownership import Ownership
from tables.checkpoint import PartitionState


class Log:
    def __init__(self, start: int = 0) -> None:
        self.start = start
        self.lookups = 0

    async def earliest(self, topic: str, partition: int) -> int:
        self.lookups += 1
        return self.start

    async def read(self, topic: str, partition: int, a: int, b: int) -> AsyncIterator[RawRecord]:
        for offset in range(a, b):
            yield RawRecord(topic, partition, offset, None, None)


async def test_the_next_offset_is_no_hole_and_needs_no_lookup() -> None:
    log = Log()
    assert await Continuity(log.read, log.earliest).missing("t", 0, 71, 70) is None
    assert log.lookups == 0


async def test_a_jump_names_the_skipped_offsets() -> None:
    log = Log()
    guard = Continuity(log.read, log.earliest)
    assert await guard.missing("t", 2, 174, 70) == (71, 174)
    assert [r.offset async for r in guard.read("t", 2, 71, 174)] == list(range(71, 174))


async def test_with_nothing_applied_the_log_start_is_next_and_looked_up_once() -> None:
    log = Log(start=3)
    guard = Continuity(log.read, log.earliest)
    assert await guard.missing("t", 0, 3, None) is None
    assert await guard.missing("t", 0, 32, None) == (3, 32)
    assert await guard.missing("t", 0, 40, None) == (3, 40)
    assert log.lookups == 1


def test_ownership_follows_rebalances() -> None:
    owned = Ownership()
    assert not owned.admits(0)  # nothing assigned yet
    owned.assigned({0, 1})
    assert owned.admits(0) and owned.admits(1)
    owned.revoked({0, 1})  # a record that waited for the revocation's checkpoint: not ours
    assert not owned.admits(0) and not owned.admits(1)
    owned.assigned({1})
    assert owned.admits(1) and not owned.admits(0)
    assert owned.dropped == 4  # the four refusals above


async def test_in_order_yields_the_skipped_records_then_the_message() -> None:
    log = Log()
    filled: list[int] = []
    guard = Continuity(log.read, log.earliest, lambda: filled.append(1))
    part = PartitionState(2, None, None, {"t": 70}, 0)  # type: ignore[arg-type]
    message = RawRecord("t", 2, 74, None, None)
    seen = []
    async for record in guard.in_order(part, message):
        part.mark(record.topic, record.offset)  # what applying does
        seen.append(record.offset)
    assert seen == [71, 72, 73, 74]
    assert len(filled) == 3


async def test_in_order_of_the_next_record_is_just_that_record() -> None:
    log = Log()
    part = PartitionState(2, None, None, {"t": 70}, 0)  # type: ignore[arg-type]
    message = RawRecord("t", 2, 71, None, None)
    assert [r async for r in Continuity(log.read, log.earliest).in_order(part, message)] == [
        message
    ]


def test_a_new_partitions_first_record_at_offset_zero_is_next_without_a_lookup() -> None:
    part = PartitionState(0, None, None, {}, 0)  # type: ignore[arg-type]  # no state needed
    assert Continuity.is_next(part, RawRecord("t", 0, 0, None, None))
    assert not Continuity.is_next(part, RawRecord("t", 0, 5, None, None))  # ask the log start
    part.applied["t"] = 4
    assert Continuity.is_next(part, RawRecord("t", 0, 5, None, None))
    assert not Continuity.is_next(part, RawRecord("t", 0, 7, None, None))
