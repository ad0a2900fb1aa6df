"""Which partitions a processor may apply records of, right now.

A processor can be handed a record fetched before a rebalance after the rebalance began: it
was waiting for the processor's lock while the revocation handler checkpointed. Applied
then, it recreates the revoked partition's state from the local disk and writes a checkpoint
into a changelog that the partition's new owner is writing too (a zombie write). So a record is
applied only if its partition was handed to this worker by the last completed rebalance and
not revoked since; anything else is dropped uncommitted, for the owner to read again.

Not "and no rebalance is under way" by Faust's flag, as an earlier version had it: Faust
clears that flag only after it has resumed the partitions and sought them, so the first
records of a newly assigned partition, fetched in between, were dropped after the consumer had
moved past them, and the partition stalled with its last records unread until the watchdog
sought it. Revocation (eager: every partition, before the group is rejoined) and assignment are
what change ownership; both are seen here, under the processor's lock.
"""

from __future__ import annotations

from collections.abc import Iterable


class Ownership:
    def __init__(self) -> None:
        self._owned: set[int] = set()
        self.dropped = 0  # records dropped as not ours (for /metrics and tests)

    def assigned(self, partitions: Iterable[int]) -> None:
        """The full set of partitions of the completed rebalance."""
        self._owned = set(partitions)

    @property
    def owned(self) -> frozenset[int]:
        return frozenset(self._owned)

    def revoked(self, partitions: Iterable[int]) -> None:
        self._owned.difference_update(partitions)

    def admits(self, partition: int) -> bool:
        if partition in self._owned:
            return True
        self.dropped += 1
        return False
