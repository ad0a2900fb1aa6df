"""Deadlines with an injected clock."""

from __future__ import annotations

from stack.clock import Deadline, wait_until, wait_until_sync


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_deadline_counts_down_with_the_clock() -> None:
    clock = FakeClock()
    deadline = Deadline(5.0, now=clock)
    assert deadline.remaining == 5.0 and not deadline.expired
    clock.t += 4.0
    assert deadline.remaining == 1.0
    clock.t += 2.0
    assert deadline.remaining == 0.0 and deadline.expired


async def test_wait_until_returns_true_once_the_check_passes() -> None:
    calls = []

    async def check() -> bool:
        calls.append(1)
        return len(calls) >= 3

    assert await wait_until(check, Deadline(5.0), interval=0.001)
    assert len(calls) == 3


async def test_wait_until_gives_up_at_the_deadline() -> None:
    clock = FakeClock()

    async def never() -> bool:
        clock.t += 1.0
        return False

    assert not await wait_until(never, Deadline(3.0, now=clock), interval=0.0)
    assert clock.t == 103.0


def test_wait_until_sync_checks_once_more_at_the_deadline() -> None:
    assert wait_until_sync(lambda: True, Deadline(0.0))
    assert not wait_until_sync(lambda: False, Deadline(0.0))
