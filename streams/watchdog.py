"""The progress watchdog: a safety net that re-reads a partition whose records stopped coming.

With the records of the inputs fed whole by the runtime adapter (`streams.runtime`), no path
is known any more that leaves a partition with records waiting and none delivered; the watchdog
is there to notice one if it exists, say so, and recover. Every seek is a WARNING line and a count
in `runway_watchdog_seeks_total`: in a healthy run both stay at zero.

Rule: when no record has reached the feeds for `idle_ticks` ticks although the consumer kept
fetching (Faust's fetch loop also applies standby changelogs, which can hold it for seconds:
that is slowness, and a seek would not help), no processor has a fetch in hand (one may take
seconds under a rate limit), no rebalance is under way, and
an owned input partition's end offset is past the state's marker while nothing of it waits in
its feed, the partition is stalled: seek it to the marker (input below is skipped anyway).
The ends are asked through the consumer's thread; when the answer takes longer than a tick
(`slow_answer_s`), that thread was held (a broker down: the fault tests saw 9.5 s) and made no
fetch meanwhile, so what it fetched before may still be on its way: the look decides nothing,
and the count starts again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

log = logging.getLogger(__name__)


class Watched(Protocol):
    """What the watchdog needs of a processor."""

    inputs: tuple[str, ...]
    busy: bool  # a fetch is in hand: its records are neither waiting nor applied yet

    def resume_offsets(self) -> Mapping[tuple[str, int], int]:
        """Next offset to apply of every owned input partition (by the state's marker)."""
        ...


class WatchdogRuntime(Protocol):
    def rebalancing(self) -> bool: ...

    def assignment(self) -> set[tuple[str, int]]: ...

    async def highwaters(self, tps: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]: ...

    async def seek(self, offsets: Mapping[tuple[str, int], int]) -> None: ...

    def describe(self, topic: str, partition: int) -> str:
        """Where the consumer stands on a partition (for the warning)."""
        ...


class Watchdog:
    def __init__(
        self,
        *,
        runtime: WatchdogRuntime,
        processors: Iterable[Watched],
        delivered: Callable[[], int],
        waiting: Callable[[tuple[str, int]], int],
        on_seek: Callable[[], object] = lambda: None,
        fetched: Callable[[], int] | None = None,
        idle_ticks: int = 3,
        slow_answer_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._runtime = runtime
        self._processors = list(processors)
        self._delivered = delivered
        self._waiting = waiting
        self._fetched = fetched
        self._seen_fetched = -1
        self._on_seek = on_seek
        self._idle_ticks = idle_ticks
        self._slow_answer_s = slow_answer_s
        self._clock = clock
        self._idle = 0
        self._seen = -1
        self.seeks = 0

    async def tick(self) -> dict[tuple[str, int], int]:
        """One look (every second); returns the seeks it issued."""
        delivered = self._delivered()
        fetched = self._fetched() if self._fetched is not None else self._seen_fetched + 1
        if delivered != self._seen:
            self._idle = 0
        elif fetched != self._seen_fetched:
            self._idle += 1  # the consumer fetched and brought none of the waiting records
        # else: the fetch loop is busy elsewhere (standby changelogs): slow, not stalled
        self._seen, self._seen_fetched = delivered, fetched
        if self._runtime.rebalancing() or any(p.busy for p in self._processors):
            self._idle = 0  # the count starts again once the group is settled and all idle
            return {}
        if self._idle < self._idle_ticks:
            return {}
        self._idle = 0
        owned = self._runtime.assignment()
        resume: dict[tuple[str, int], int] = {}
        for processor in self._processors:
            for tp, offset in processor.resume_offsets().items():
                if tp in owned and not self._waiting(tp):
                    resume[tp] = offset
        if not resume:
            return {}
        asked_at = self._clock()
        ends = await self._runtime.highwaters(resume)
        answered_in = self._clock() - asked_at
        if answered_in > self._slow_answer_s:
            log.info("progress watchdog: the ends took %.1f s; looking again", answered_in)
            return {}
        # The ends are asked through the consumer's thread, behind a fetch in flight: that fetch
        # may have brought these very records meanwhile (seen at a stream's end on a loaded
        # machine: the seek dropped them from the feed and had them read again, a false stall).
        if self._delivered() != delivered or any(p.busy for p in self._processors):
            return {}
        stalled = {
            tp: at for tp, at in resume.items() if ends.get(tp, 0) > at and not self._waiting(tp)
        }
        if not stalled or self._runtime.rebalancing():  # one may have begun meanwhile
            return {}
        for (topic, partition), at in sorted(stalled.items()):
            log.warning(
                "progress watchdog: %s[%s] stalled at %s of %s; seeking (%s)",
                topic,
                partition,
                at,
                ends[(topic, partition)],
                self._runtime.describe(topic, partition),
            )
            self.seeks += 1
            self._on_seek()
        await self._runtime.seek(stalled)
        return stalled
