"""The progress watchdog seeks an owned input partition to its processor's resume offset when no
record reached the feeds for 3 ticks, nothing is in hand or waiting, no rebalance is under way and
the partition's end offset is past that offset."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from streams.watchdog import Watchdog

IN0, IN1, IN2 = ("in", 0), ("in", 1), ("in", 2)


class FakeRuntime:
    """Exactly the watchdog's runtime protocol; any other attribute (a consumer, the app) fails.

    Seeking in the consumer's own thread is `Runtime.seek`'s business: the watchdog only asks.
    """

    def __init__(self, owned: Iterable[tuple[str, int]], ends: Mapping[tuple[str, int], int]):
        self.owned = set(owned)
        self.ends = dict(ends)
        self.rebalance = False
        self.rebalance_while_asked = False  # a rebalance begins while the ends are asked for
        self.while_asked: list[Any] = []  # run while the ends are asked for (a fetch lands)
        self.asked: list[set[tuple[str, int]]] = []
        self.seeks: list[dict[tuple[str, int], int]] = []

    def rebalancing(self) -> bool:
        return self.rebalance

    def assignment(self) -> set[tuple[str, int]]:
        return set(self.owned)

    async def highwaters(self, tps: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        wanted = set(tps)
        self.asked.append(wanted)
        if self.rebalance_while_asked:
            self.rebalance = True
        for happening in self.while_asked:
            happening()
        return {tp: self.ends[tp] for tp in wanted if tp in self.ends}

    async def seek(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.seeks.append(dict(offsets))

    def describe(self, topic: str, partition: int) -> str:
        return f"at {topic}[{partition}]"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AssertionError(f"the watchdog reached past the runtime protocol: .{name}")


@dataclass
class FakeProcessor:
    resume: dict[tuple[str, int], int]
    inputs: tuple[str, ...] = ("in",)
    busy: bool = False

    def resume_offsets(self) -> dict[tuple[str, int], int]:
        return dict(self.resume)


@dataclass
class World:
    runtime: FakeRuntime
    processors: list[FakeProcessor]
    delivered: int = 0
    waiting: dict[tuple[str, int], int] = field(default_factory=dict)
    on_seek_calls: int = 0
    watchdog: Watchdog = field(init=False)

    def __post_init__(self) -> None:
        self.watchdog = Watchdog(
            runtime=self.runtime,
            processors=self.processors,
            delivered=lambda: self.delivered,
            waiting=lambda tp: self.waiting.get(tp, 0),
            on_seek=self.count_seek,
        )

    def count_seek(self) -> None:
        self.on_seek_calls += 1

    async def ticks(self, n: int) -> list[dict[tuple[str, int], int]]:
        return [await self.watchdog.tick() for _ in range(n)]

    @property
    def sought(self) -> list[dict[tuple[str, int], int]]:
        """Seeks of at least one partition."""
        return [s for s in self.runtime.seeks if s]


def world(
    resume: dict[tuple[str, int], int],
    ends: dict[tuple[str, int], int],
    owned: Iterable[tuple[str, int]] | None = None,
) -> World:
    runtime = FakeRuntime(resume if owned is None else owned, ends)
    return World(runtime, [FakeProcessor(resume)])


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "streams.watchdog" and r.levelno == logging.WARNING
    ]


async def test_a_stalled_partition_is_sought_to_its_resume_offset_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = world(resume={IN0: 5, IN1: 7}, ends={IN0: 9, IN1: 7})  # IN1 is caught up
    caplog.set_level(logging.WARNING, logger="streams.watchdog")

    assert await w.ticks(3) == [{}, {}, {}]  # the first look, then 2 idle ticks
    assert w.runtime.seeks == []
    assert await w.watchdog.tick() == {IN0: 5}  # the 3rd idle tick

    assert w.runtime.asked == [{IN0, IN1}]
    assert w.runtime.seeks == [{IN0: 5}]
    assert w.on_seek_calls == 1
    assert w.watchdog.seeks == 1
    [line] = warnings(caplog)
    assert line.getMessage() == "progress watchdog: in[0] stalled at 5 of 9; seeking (at in[0])"


async def test_stalled_partitions_are_sought_in_one_seek_and_counted_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = FakeRuntime({IN0, IN1, ("other", 0)}, {IN0: 9, IN1: 8, ("other", 0): 4})
    w = World(runtime, [FakeProcessor({IN0: 5, IN1: 2}), FakeProcessor({("other", 0): 1})])
    caplog.set_level(logging.WARNING, logger="streams.watchdog")

    await w.ticks(4)

    assert runtime.seeks == [{IN0: 5, IN1: 2, ("other", 0): 1}]
    assert w.on_seek_calls == 3
    assert w.watchdog.seeks == 3
    assert [r.getMessage() for r in warnings(caplog)] == [
        "progress watchdog: in[0] stalled at 5 of 9; seeking (at in[0])",
        "progress watchdog: in[1] stalled at 2 of 8; seeking (at in[1])",
        "progress watchdog: other[0] stalled at 1 of 4; seeking (at other[0])",
    ]


async def test_after_a_seek_it_takes_3_more_idle_ticks_to_seek_again() -> None:
    w = world(resume={IN0: 5}, ends={IN0: 9})
    await w.ticks(4)
    assert w.sought == [{IN0: 5}]
    await w.ticks(2)
    assert w.sought == [{IN0: 5}]
    await w.watchdog.tick()
    assert w.sought == [{IN0: 5}, {IN0: 5}]


async def test_nothing_is_done_before_3_idle_ticks() -> None:
    w = world(resume={IN0: 5}, ends={IN0: 9})
    assert await w.ticks(3) == [{}, {}, {}]
    assert w.runtime.asked == [] and w.runtime.seeks == [] and w.on_seek_calls == 0


async def test_a_delivery_resets_the_idle_count() -> None:
    w = world(resume={IN0: 5}, ends={IN0: 9})
    await w.ticks(3)  # 2 idle ticks
    w.delivered += 1
    await w.ticks(3)  # a delivery seen, then 2 idle ticks
    assert w.runtime.asked == [] and w.runtime.seeks == []
    w.delivered += 10
    await w.ticks(3)
    assert w.runtime.seeks == []
    assert await w.watchdog.tick() == {IN0: 5}


async def test_nothing_is_done_while_a_processor_is_busy() -> None:
    w = world(resume={IN0: 5}, ends={IN0: 9})
    w.processors[0].busy = True  # a fetch in hand (a rate limit may hold it for seconds)
    assert await w.ticks(10) == [{}] * 10
    assert w.runtime.asked == [] and w.runtime.seeks == [] and w.on_seek_calls == 0

    w.processors[0].busy = False  # done with it: idle ticks count from the last busy one
    await w.ticks(2)
    assert w.runtime.seeks == []
    await w.watchdog.tick()
    assert w.sought == [{IN0: 5}]


async def test_one_busy_processor_is_enough_to_hold_it_back() -> None:
    runtime = FakeRuntime({IN0, IN1}, {IN0: 9, IN1: 9})
    w = World(runtime, [FakeProcessor({IN0: 5}), FakeProcessor({IN1: 5}, busy=True)])
    await w.ticks(10)
    assert runtime.asked == [] and runtime.seeks == []


async def test_nothing_is_done_while_rebalancing(caplog: pytest.LogCaptureFixture) -> None:
    w = world(resume={IN0: 5}, ends={IN0: 9})
    w.runtime.rebalance = True
    caplog.set_level(logging.WARNING, logger="streams.watchdog")
    assert await w.ticks(10) == [{}] * 10
    assert w.runtime.asked == [] and w.runtime.seeks == []
    assert w.on_seek_calls == 0 and w.watchdog.seeks == 0 and warnings(caplog) == []


async def test_nothing_is_done_when_a_rebalance_begins_while_the_ends_are_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = world(resume={IN0: 5}, ends={IN0: 9})
    w.runtime.rebalance_while_asked = True
    caplog.set_level(logging.WARNING, logger="streams.watchdog")
    assert await w.ticks(4) == [{}] * 4
    assert w.runtime.asked == [{IN0}]  # it did ask...
    assert w.runtime.seeks == []  # ...and then let it be
    assert w.on_seek_calls == 0 and w.watchdog.seeks == 0 and warnings(caplog) == []


async def test_partitions_not_assigned_are_left_alone() -> None:
    w = world(resume={IN0: 5, IN1: 5}, ends={IN0: 9, IN1: 9}, owned={IN1})
    await w.ticks(4)
    assert w.runtime.asked == [{IN1}]
    assert w.runtime.seeks == [{IN1: 5}]

    nothing_owned = world(resume={IN0: 5}, ends={IN0: 9}, owned=())
    await nothing_owned.ticks(8)
    assert nothing_owned.runtime.asked == [] and nothing_owned.runtime.seeks == []


async def test_partitions_with_records_waiting_in_the_feed_are_left_alone() -> None:
    w = world(resume={IN0: 5, IN1: 5}, ends={IN0: 9, IN1: 9})
    w.waiting[IN0] = 4  # held, say: its records are there, the processor has yet to take them
    await w.ticks(4)
    assert w.runtime.asked == [{IN1}]
    assert w.runtime.seeks == [{IN1: 5}]

    all_waiting = world(resume={IN0: 5}, ends={IN0: 9})
    all_waiting.waiting[IN0] = 1
    await all_waiting.ticks(8)
    assert all_waiting.runtime.asked == [] and all_waiting.runtime.seeks == []


@pytest.mark.parametrize("end", [5, 3, None], ids=["at-resume", "behind-resume", "unknown"])
async def test_a_partition_whose_end_is_not_past_its_resume_offset_is_not_stalled(
    end: int | None, caplog: pytest.LogCaptureFixture
) -> None:
    w = world(resume={IN0: 5}, ends={} if end is None else {IN0: end})
    caplog.set_level(logging.WARNING, logger="streams.watchdog")
    assert await w.ticks(8) == [{}] * 8
    assert w.sought == []
    assert w.on_seek_calls == 0 and w.watchdog.seeks == 0 and warnings(caplog) == []


async def test_the_watchdog_only_reads_the_feeds_through_its_callables() -> None:
    """It neither takes nor drops records: `waiting` and `delivered` are all it knows of them."""
    calls: list[str] = []
    runtime = FakeRuntime({IN0, IN2}, {IN0: 9, IN2: 3})

    def delivered() -> int:
        calls.append("delivered")
        return 0

    def waiting(tp: tuple[str, int]) -> int:
        calls.append(f"waiting {tp}")
        return 0

    watchdog = Watchdog(
        runtime=runtime,
        processors=[FakeProcessor({IN0: 5, IN2: 1})],
        delivered=delivered,
        waiting=waiting,
    )
    for _ in range(4):
        await watchdog.tick()
    assert runtime.seeks == [{IN0: 5, IN2: 1}]
    assert set(calls) == {"delivered", f"waiting {IN0}", f"waiting {IN2}"}


async def test_the_idle_count_starts_again_after_a_rebalance() -> None:
    """A long rebalance is not idleness: after it, the consumer gets 3 ticks to deliver."""
    w = world(resume={IN0: 5}, ends={IN0: 9})
    w.runtime.rebalance = True
    await w.ticks(10)
    w.runtime.rebalance = False
    assert await w.ticks(2) == [{}, {}]
    assert w.runtime.seeks == []
    assert await w.watchdog.tick() == {IN0: 5}  # still stalled 3 settled ticks later


def lone_stall(**options: Any) -> tuple[FakeRuntime, Watchdog]:
    """One owned partition, resumed at 5 with its end at 9, nothing delivered or waiting: the
    watchdog built with `options` (its fetch counter, its clock)."""
    runtime = FakeRuntime({IN0}, {IN0: 9})
    watchdog = Watchdog(
        runtime=runtime,
        processors=[FakeProcessor({IN0: 5})],
        delivered=lambda: 0,
        waiting=lambda tp: 0,
        **options,
    )
    return runtime, watchdog


async def test_a_fetch_loop_busy_elsewhere_is_slow_not_stalled() -> None:
    """Faust's fetch loop also applies standby changelogs: while it does, no fetch is made and
    nothing is delivered. Only ticks in which the consumer fetched count as idle."""
    fetches = [0]
    runtime, watchdog = lone_stall(fetched=lambda: fetches[0])
    for _ in range(10):  # no fetch at all: busy elsewhere
        assert await watchdog.tick() == {}
    for _ in range(3):  # fetches that bring nothing
        fetches[0] += 1
        result = await watchdog.tick()
    assert result == {IN0: 5}


async def test_records_that_arrive_while_the_ends_are_asked_are_not_a_stall() -> None:
    """The ends come through the consumer's thread, behind a fetch in flight; when that fetch
    brings the records meanwhile, seeking would drop them from the feed and read them again
    (seen twice in the fault tests at the end of a stream, on a loaded machine)."""
    w = world(resume={IN0: 5, IN1: 7}, ends={IN0: 9, IN1: 9})

    def fetch_lands() -> None:
        w.delivered += 4
        w.waiting[IN0] = 4

    w.runtime.while_asked.append(fetch_lands)
    assert await w.ticks(4) == [{}, {}, {}, {}]
    assert w.runtime.asked == [{IN0, IN1}] and w.runtime.seeks == []
    assert w.watchdog.seeks == 0


async def test_a_fetch_taken_while_the_ends_are_asked_is_not_a_stall() -> None:
    """A processor that took a fetch while the ends were asked is working, not stalled: the
    next looks decide (its records are neither waiting nor applied yet)."""
    w = world(resume={IN0: 5}, ends={IN0: 9})
    w.runtime.while_asked.append(lambda: setattr(w.processors[0], "busy", True))
    assert await w.ticks(4) == [{}, {}, {}, {}]
    assert w.runtime.seeks == []


async def test_a_slow_answer_for_the_ends_decides_nothing() -> None:
    """The ends come through the consumer's thread: when the answer took longer than a tick,
    that thread was held (a broker down) and fetched nothing meanwhile, so records it fetched
    before may still be on their way (the fault tests saw 9.5 s and five needless seeks). The
    look decides nothing; the count starts again, and a stall that stays is sought later."""
    now = [0.0]
    runtime, watchdog = lone_stall(clock=lambda: now[0])
    runtime.while_asked.append(lambda: now.__setitem__(0, now[0] + 9.5))
    assert [await watchdog.tick() for _ in range(4)] == [{}, {}, {}, {}]
    assert runtime.seeks == [] and watchdog.seeks == 0
    runtime.while_asked.clear()  # the brokers are back: the answer is quick
    assert [await watchdog.tick() for _ in range(3)] == [{}, {}, {IN0: 5}]
    assert watchdog.seeks == 1
