"""Deadlines for waiting on processes and ports: the one place the stack polls with sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Deadline:
    """A point in monotonic time; `now` is injectable so tests can move the clock."""

    seconds: float
    now: Callable[[], float] = time.monotonic
    start: float = field(init=False)

    def __post_init__(self) -> None:
        self.start = self.now()

    @property
    def remaining(self) -> float:
        return max(0.0, self.start + self.seconds - self.now())

    @property
    def expired(self) -> bool:
        return self.remaining <= 0.0


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    deadline: Deadline,
    interval: float = 0.2,
) -> bool:
    """Poll `check` until it is true (True) or the deadline passes (False)."""
    while True:
        if await check():
            return True
        if deadline.expired:
            return False
        await asyncio.sleep(min(interval, deadline.remaining))


def wait_until_sync(check: Callable[[], bool], deadline: Deadline, interval: float = 0.1) -> bool:
    """The blocking twin of `wait_until`, for process shutdown."""
    while True:
        if check():
            return True
        if deadline.expired:
            return False
        time.sleep(min(interval, deadline.remaining))
