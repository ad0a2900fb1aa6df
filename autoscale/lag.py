"""Consumer lag in seconds, the pure arithmetic: no Kafka here, only offsets, timestamps, time.

Why seconds: an offset count means nothing without the rate behind it (10,000 records is a
second at peak and an hour at night), while the age of the oldest unconsumed record is what a
reader of the views feels. A partition's lag is `now - timestamp of the record at the committed
offset` (the next record the group will read), 0 when the group has committed everything, and
counted from the earliest retained record when the group has committed nothing there yet.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

PartitionKey = tuple[str, int]


@dataclass(frozen=True)
class PartitionOffsets:
    """What Kafka says of one partition: the group's committed offset and the log's bounds."""

    topic: str
    partition: int
    committed: int | None  # None: the group has never committed here
    start: int  # first retained offset
    end: int  # offset the next produced record gets

    @property
    def key(self) -> PartitionKey:
        return (self.topic, self.partition)

    @property
    def position(self) -> int:
        """Where the group resumes: the committed offset, else the earliest retained record.

        A committed offset below the log start (retention deleted it) resumes at the start; one
        past the end (a truncated log) counts as caught up.
        """
        if self.committed is None:
            return self.start
        return min(max(self.committed, self.start), self.end)

    @property
    def offset_lag(self) -> int:
        return self.end - self.position


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    end: int
    offset_lag: int
    lag_s: float
    rate: float | None  # records/s the group consumed here over the rate window
    drain_s: float | None  # offset_lag / rate; None when nothing was consumed yet

    @property
    def key(self) -> PartitionKey:
        return (self.topic, self.partition)


@dataclass(frozen=True)
class GroupLag:
    group: str
    at_ms: int
    partitions: tuple[PartitionLag, ...]
    lag_s: float  # max over partitions: the group is as late as its latest partition
    offset_lag: int  # sum over partitions
    consumption_rate: float | None  # records/s, all partitions
    production_rate: float | None  # records/s appended to the input topics
    drain_s: float | None  # offset_lag / consumption_rate

    @property
    def partition_count(self) -> int:
        """Partitions of the widest input topic: the most workers that can own one each."""
        per_topic: dict[str, int] = {}
        for p in self.partitions:
            per_topic[p.topic] = max(per_topic.get(p.topic, 0), p.partition + 1)
        return max(per_topic.values(), default=0)


def lag_seconds(offsets: PartitionOffsets, head_timestamp_ms: int | None, now_ms: int) -> float:
    """Seconds since the record at the group's position was produced; 0 when caught up.

    `head_timestamp_ms` is that record's stored timestamp (None if it could not be read: then
    the partition is reported caught up only if its offset lag is 0, else as 0 s but with its
    offset lag, so the caller sees something is off). Clock skew never gives a negative lag.
    """
    if offsets.offset_lag <= 0 or head_timestamp_ms is None:
        return 0.0
    return max(now_ms - head_timestamp_ms, 0) / 1000.0


def drain_seconds(offset_lag: int, rate: float | None) -> float | None:
    """Offset lag over the consumption rate: 0 when caught up, None when nothing moves."""
    if offset_lag <= 0:
        return 0.0
    if rate is None or rate <= 0:
        return None
    return offset_lag / rate


@dataclass(frozen=True)
class _Sample:
    at_s: float
    positions: dict[PartitionKey, int]
    ends: dict[PartitionKey, int]


class RateWindow:
    """Consumption and production rates from successive samples of offsets.

    Committed offsets move in steps (one commit per checkpoint), so a rate over one interval
    jumps between 0 and a burst; the window (`window_s`) smooths that. Keeps the samples of the
    last `window_s` seconds plus the one just before, so the window is always fully covered.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: deque[_Sample] = deque()

    def add(self, at_s: float, offsets: list[PartitionOffsets]) -> None:
        positions = {o.key: o.position for o in offsets}
        ends = {o.key: o.end for o in offsets}
        self._samples.append(_Sample(at_s, positions, ends))
        while len(self._samples) > 2 and at_s - self._samples[1].at_s >= self.window_s:
            self._samples.popleft()

    def _span(self) -> tuple[_Sample, _Sample] | None:
        if len(self._samples) < 2 or self._samples[-1].at_s <= self._samples[0].at_s:
            return None
        return self._samples[0], self._samples[-1]

    def partition_rate(self, key: PartitionKey) -> float | None:
        span = self._span()
        if span is None:
            return None
        first, last = span
        if key not in first.positions or key not in last.positions:
            return None
        moved = last.positions[key] - first.positions[key]
        return max(moved, 0) / (last.at_s - first.at_s)

    def rates(self) -> tuple[float | None, float | None]:
        """(consumption, production) in records/s over the window; None before two samples."""
        span = self._span()
        if span is None:
            return None, None
        first, last = span
        seconds = last.at_s - first.at_s
        shared = first.positions.keys() & last.positions.keys()
        consumed = sum(max(last.positions[k] - first.positions[k], 0) for k in shared)
        produced = sum(max(last.ends[k] - first.ends[k], 0) for k in shared)
        return consumed / seconds, produced / seconds


def group_lag(
    group: str,
    offsets: list[PartitionOffsets],
    head_timestamps_ms: dict[PartitionKey, int],
    now_ms: int,
    rates: RateWindow | None = None,
) -> GroupLag:
    """Per-partition and group lag from one sample (`rates` already holds this sample)."""
    rows: list[PartitionLag] = []
    for o in sorted(offsets, key=lambda o: o.key):
        rate = rates.partition_rate(o.key) if rates else None
        rows.append(
            PartitionLag(
                topic=o.topic,
                partition=o.partition,
                committed=o.committed,
                end=o.end,
                offset_lag=o.offset_lag,
                lag_s=lag_seconds(o, head_timestamps_ms.get(o.key), now_ms),
                rate=rate,
                drain_s=drain_seconds(o.offset_lag, rate),
            )
        )
    consumption, production = rates.rates() if rates else (None, None)
    total = sum(r.offset_lag for r in rows)
    return GroupLag(
        group=group,
        at_ms=now_ms,
        partitions=tuple(rows),
        lag_s=max((r.lag_s for r in rows), default=0.0),
        offset_lag=total,
        consumption_rate=consumption,
        production_rate=production,
        drain_s=drain_seconds(total, consumption),
    )


def as_json(lag: GroupLag) -> dict[str, object]:
    """The `runway lag --json` document (stable keys; None for unknown figures)."""

    def num(value: float | None) -> float | None:
        return None if value is None or math.isinf(value) else round(value, 3)

    return {
        "group": lag.group,
        "at_ms": lag.at_ms,
        "lag_seconds": num(lag.lag_s),
        "offset_lag": lag.offset_lag,
        "consumption_rate": num(lag.consumption_rate),
        "production_rate": num(lag.production_rate),
        "drain_seconds": num(lag.drain_s),
        "partitions": [
            {
                "topic": p.topic,
                "partition": p.partition,
                "committed": p.committed,
                "end": p.end,
                "offset_lag": p.offset_lag,
                "lag_seconds": num(p.lag_s),
                "rate": num(p.rate),
                "drain_seconds": num(p.drain_s),
            }
            for p in lag.partitions
        ],
    }
