"""Bulkheads: a bounded number of requests of one class in flight, a bounded wait for a slot.

The seed's classes and limits: dashboard 50 / 5 s, api 100 / 10 s, internal 30 / 3 s. A request
that gets no slot within the wait is refused (the API answers 503 with Retry-After) instead of
queueing without bound and dragging the other classes down. asyncio.Semaphore does the counting;
the wait is `wait_for`, injectable so tests need no real time.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

WaitFor = Callable[[Awaitable[Any], float], Awaitable[Any]]


class BulkheadFull(Exception):
    def __init__(self, name: str, retry_after_s: int) -> None:
        super().__init__(f"bulkhead {name!r} full")
        self.name = name
        self.retry_after_s = retry_after_s


class Bulkhead:
    def __init__(
        self,
        name: str,
        max_concurrent: int,
        max_wait_s: float,
        wait_for: WaitFor = asyncio.wait_for,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("a bulkhead needs at least one slot")
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_wait_s = max_wait_s
        self._sem = asyncio.Semaphore(max_concurrent)
        self._wait_for = wait_for
        self.in_flight = 0
        self.waiting = 0
        self.rejected = 0

    @property
    def retry_after_s(self) -> int:
        """Whole seconds (the header's unit): a slot frees within about one wait."""
        return max(1, math.ceil(self.max_wait_s))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._sem.locked():
            self.waiting += 1
            try:
                await self._wait_for(self._sem.acquire(), self.max_wait_s)
            except TimeoutError:
                self.rejected += 1
                raise BulkheadFull(self.name, self.retry_after_s) from None
            finally:
                self.waiting -= 1
        else:
            # a free slot is taken at once, even with a zero wait (wait_for(…, 0) would refuse)
            await self._sem.acquire()
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._sem.release()
