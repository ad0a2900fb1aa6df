"""Which offset of a partition may be committed: the lowest one whose work is not yet durable.
Pure. Requests finish out of order (20 in flight), so a partition's committed offset only
passes a record once every request it produced has a durable fate."""

from __future__ import annotations

from collections import OrderedDict


class PartitionOffsets:
    def __init__(self) -> None:
        self._pending: OrderedDict[int, int] = OrderedDict()  # offset -> unfinished requests
        self._next = -1  # one past the highest offset seen

    def seen(self, offset: int, pending: int) -> None:
        """Record `offset` read, with `pending` requests still to settle (0: nothing to do)."""
        if pending:
            self._pending[offset] = pending
        self._next = max(self._next, offset + 1)

    def settled(self, offset: int) -> None:
        left = self._pending[offset] - 1
        if left:
            self._pending[offset] = left
        else:
            del self._pending[offset]

    def committable(self) -> int | None:
        """The offset to commit (the next record to read after a restart), None if none seen."""
        if self._pending:
            return next(iter(self._pending))
        return self._next if self._next >= 0 else None
