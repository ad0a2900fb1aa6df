"""Input continuity: a partition's records are applied in offset order, with no hole.

The state's marker says which offsets it holds, so the next record applied must be the one right
after it. Faust does not always deliver that. After SIGKILL storms we saw a worker that
recovered a marker at offset 70 receive offset 174 next, and another whose state was empty
receive offset 32 first: the group's committed offsets had run ahead of the state, and the
records in between were never joined. Seeking Faust's consumer back does not help: records it
has already fetched keep raising its read position, and it then drops the re-fetched ones.

So a hole is filled where it is found: the processor reads the missing records itself, with a
consumer of its own (`read`), applies them in order, then the record that revealed the hole.
The group's committed offsets and Faust's fetch position stop mattering for exactness; only the
state's marker does. Missing records that no longer exist (removed by retention, or offsets
taken by another producer's transaction markers) are simply not there to apply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RawRecord:
    """The parts of a Kafka record a processor applies."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


ReadRange = Callable[[str, int, int, int], AsyncIterator[RawRecord]]  # topic, partition, [a, b)
Earliest = Callable[[str, int], Awaitable[int]]  # (topic, partition) -> log start offset


class Continuity:
    def __init__(self, read: ReadRange, earliest: Earliest) -> None:
        self.read = read
        self._earliest = earliest
        self._log_start: dict[tuple[str, int], int] = {}

    async def missing(
        self, topic: str, partition: int, offset: int, applied: int | None
    ) -> tuple[int, int] | None:
        """The offsets [start, offset) to apply before `offset`, or None when it is next.

        `applied` is the last offset the state holds (None: none of this partition's yet, so
        the log's start is next). Offsets at or below `applied` are the caller's to skip.
        """
        if applied is not None:
            expected = applied + 1
        else:
            key = (topic, partition)
            if key not in self._log_start:  # one lookup per partition and process
                self._log_start[key] = await self._earliest(topic, partition)
            expected = self._log_start[key]
        return (expected, offset) if offset > expected else None
