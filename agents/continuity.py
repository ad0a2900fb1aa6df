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

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tables.checkpoint import PartitionState

log = logging.getLogger(__name__)


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
    def __init__(
        self, read: ReadRange, earliest: Earliest, on_filled: Callable[[], object] = lambda: None
    ) -> None:
        self.read = read
        self._earliest = earliest
        self._on_filled = on_filled
        self._log_start: dict[tuple[str, int], int] = {}

    @staticmethod
    def is_next(part: PartitionState, message: Any) -> bool:
        """The common case, checked without an async generator per record (the hot path)."""
        # Nothing applied yet: offset 0 is next (every log starts there or later), so a new
        # partition's first record needs no lookup of the log start. That lookup goes through
        # the consumer's thread, behind its fetch, and took ~1.5 s per partition.
        return message.offset == part.applied.get(message.topic, -1) + 1

    async def in_order(
        self, part: PartitionState, message: Any, *, rewound: bool = False
    ) -> AsyncIterator[Any]:
        """The records to apply for `message`, in order: those the consumer skipped, then it.

        The caller applies each record before asking for the next (`part.applied` moves on).
        `rewound`: the partition went back to its last checkpoint on purpose (a record failed
        to apply), so the range is read again without being counted as a hole.
        """
        topic = message.topic
        hole = await self.missing(topic, part.partition, message.offset, part.applied.get(topic))
        if hole is not None:
            start, end = hole
            if rewound:
                log.info("%s[%s] offsets %s..%s read again", topic, part.partition, start, end - 1)
            else:
                log.warning(
                    "%s[%s] offsets %s..%s were skipped by the consumer; reading them",
                    topic,
                    part.partition,
                    start,
                    end - 1,
                )
            async for record in self.read(topic, part.partition, start, end):
                if not part.already_applied(topic, record.offset):
                    if not rewound:
                        self._on_filled()
                    yield record
        yield message

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
