"""Verdicts in event time: each model judged when its clock crosses a whole hour.

The wall-clock emitter (`sinks.staleness`) judges once a second from committed state, so a
worker running faster than real time (a backlog after an outage, a replay of history) judges a
model every few hours of event time, and a replay cannot say when the monitor would have fired.
Here the join asks, before it applies an event whose timestamp reaches its model's next whole
hour, for the model's verdict at that hour, from the state as it then is: every event applied
before it is in (the partition's unsettled bucket changes are settled first), nothing at or
past the boundary is. So a replay gives, hour by hour, the verdicts live processing would have
given, and each carries the hour boundary as its `event_time`.

Cost on the join's path: one dict lookup per record (the model's next boundary, `marks`) and
one integer comparison per event; `crossed` runs about once per model and hour.

Emission. Each hour's verdict is sent (at least once) with the `joined` records and dead letters
in step 1 of the checkpoint that makes the state it was judged from durable, so offsets are
committed only after it is acknowledged; a crash before that checkpoint completes replays the
input and judges the hour again. A partition that goes back to its last checkpoint drops what it
judged since. The registry records every event_time (its rows are unique by model, event_time
and emitted_at), so each hour becomes a history row. The registry's declared facts (trained
time, maximum age, baseline) are looked up when the verdicts are sent, not on the join's path:
the signals read from the state are kept until then (`Judged`) and judged with the facts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from config.windows import HOUR_MS
from sinks.staleness import version_facts
from staleness.config import StalenessConfig
from staleness.events import to_event
from staleness.inputs import ModelSignals, VersionFacts, current_version, staleness_inputs
from staleness.scorer import references_to_store
from staleness.verdict import judge
from tables import keys
from tables.join import JoinEffects, State

log = logging.getLogger(__name__)

# Hours judged for one crossing at most (a model back after a week's silence): the last ones.
MAX_HOURS_PER_CROSSING = 168
NEVER = 1 << 62  # a mark no event time reaches: the join's marks when nothing is judged

Reader = Callable[[bytes], Any]
Registry = tuple[dict[str, Any] | None, list[str]]  # the cached model document, impacted ids
RegistryLookup = Callable[[list[str]], Awaitable[dict[str, Registry]]]
Output = tuple[str, bytes, bytes]  # topic, key, value: as the join sends its other outputs


def next_hour(ts: int) -> int:
    """The first whole hour after `ts` (an event at exactly an hour has crossed it)."""
    return ts - ts % HOUR_MS + HOUR_MS


def hours_crossed(clock: int, ts: int) -> list[int]:
    """The whole hours h with clock < h <= ts, the last MAX_HOURS_PER_CROSSING of them."""
    first = next_hour(clock)
    last = ts - ts % HOUR_MS
    if last < first:
        return []
    first = max(first, last - (MAX_HOURS_PER_CROSSING - 1) * HOUR_MS)
    return list(range(first, last + 1, HOUR_MS))


@dataclass(frozen=True)
class Judged:
    """A model's signals at an hour boundary, read from the state then; judged when sent."""

    partition: int
    model_id: str
    hour_ms: int
    signals: ModelSignals


def signals_at(
    read: Reader, model_id: str, at_ms: int, cfg: StalenessConfig
) -> ModelSignals | None:
    """What `staleness.scorer.score_model` reads for its verdict at `at_ms`, without the
    registry's facts (they are added when the verdict is sent: `verdict_of`).

    The drift reference is taken as the join would store it now (`references_to_store`, the
    worker's own refresh), overlaid on the reads and not written: the stored one is refreshed
    only at checkpoints, which a fast replay makes hours of event time apart.
    """
    fresh = dict(references_to_store(read, model_id, cfg))

    def overlaid(key: bytes) -> Any:
        value = fresh.get(key)
        return read(key) if value is None else value

    info = overlaid(keys.model(model_id))
    if info is None or info["task"] is None or not info["versions"]:
        return None
    shortest = min(cfg.windows, key=lambda w: w.length_ms)
    version = current_version(overlaid, model_id, info["versions"], shortest, at_ms)
    return staleness_inputs(
        overlaid, model_id, at_ms, cfg, version=version, lookback_ms=cfg.lookback_ms
    )


def verdict_of(judged: Judged, facts: VersionFacts | None, cfg: StalenessConfig) -> Any:
    """The verdict of judged signals with the registry's facts of their version."""
    return judge(replace(judged.signals, facts=facts or VersionFacts()), cfg)


class HourlyVerdicts:
    """The join's hook (`marks`, `crossed`) and the verdicts it found, until they are sent.

    `settle(txn, fx)` writes a partition's unsettled bucket and model-record changes
    (`JoinRules.settle`); `registry(models)` gives each model's cached registry document and
    impacted models (`StalenessEmitter.registry_for`; empty facts while Redis is away);
    `on_sent(events)` is told of the events handed to the checkpoint (the emitter records them
    in its emission policy, so the wall-clock path does not repeat a state change); `on_error`
    counts a model that could not be judged (it is skipped, the join goes on).
    """

    def __init__(
        self,
        *,
        cfg: StalenessConfig,
        topic: str,
        settle: Callable[[State, JoinEffects], None],
        registry: RegistryLookup,
        on_sent: Callable[[list[dict[str, Any]]], None] = lambda events: None,
        on_error: Callable[[], None] = lambda: None,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.cfg = cfg
        self.topic = topic
        self._settle = settle
        self._registry = registry
        self._on_sent = on_sent
        self._on_error = on_error
        self._now = clock_ms
        # model key (bytes, the record key) -> the next whole hour of the model's clock; the
        # join compares each event's timestamp with it. Absent: 0, so the first event of a
        # model (after a start or a rewind) asks `crossed`, which reads the clock from state.
        self.marks: dict[bytes, int] = {}
        self._partition_of: dict[bytes, int] = {}
        self._judged: dict[int, list[Judged]] = {}

    # -- on the join's path ------------------------------------------------------------------
    def crossed(self, partition: int, txn: State, event: dict[str, Any], fx: JoinEffects) -> int:
        """`event` reaches its model's mark: judge every whole hour its clock crosses, from the
        state before the event; returns the model's next mark."""
        model_id, ts = event["model_id"], event["timestamp"]
        clock = self._clock(txn, model_id, fx)
        if clock is None:  # the model's first event: nothing before it to judge
            mark = next_hour(ts)
        else:
            hours = hours_crossed(clock, ts)
            if hours:
                self._settle(txn, fx)
                self._judge(partition, txn.get, model_id, hours)
            mark = next_hour(max(clock, ts))
        key = model_id.encode()
        self.marks[key] = mark
        self._partition_of[key] = partition
        return mark

    @staticmethod
    def _clock(txn: State, model_id: str, fx: JoinEffects) -> int | None:
        """The model's clock with the partition's unsettled events in."""
        info = txn.get(keys.model(model_id))
        touch = fx.touched.get(model_id)
        clocks = [info["clock"]] if info is not None else []
        if touch is not None:
            clocks.append(touch.clock)
        return max(clocks) if clocks else None

    def _judge(self, partition: int, read: Reader, model_id: str, hours: list[int]) -> None:
        try:
            for hour in hours:
                signals = signals_at(read, model_id, hour, self.cfg)
                if signals is not None:
                    self._judged.setdefault(partition, []).append(
                        Judged(partition, model_id, hour, signals)
                    )
        except Exception:  # noqa: BLE001 - one model's state must not fail the join's record
            log.exception("staleness: model %r could not be judged at an hour; skipped", model_id)
            self._on_error()

    # -- the checkpoint ----------------------------------------------------------------------
    def pending(self) -> int:
        return sum(len(judged) for judged in self._judged.values())

    async def outputs(self) -> dict[int, list[Output]]:
        """The verdicts judged since the last call, as `staleness` records per partition.

        Called in step 1 of the join's checkpoint: the records go out with the `joined` ones
        and are acknowledged before the state they were judged from becomes durable.
        """
        judged, self._judged = self._judged, {}
        if not judged:
            return {}
        models = sorted({j.model_id for group in judged.values() for j in group})
        registry = await self._registry(models)
        now = self._now()
        out: dict[int, list[Output]] = {}
        events = []
        for partition, group in judged.items():
            for one in group:
                cached, impacted = registry.get(one.model_id, (None, []))
                version = one.signals.version
                try:
                    verdict = verdict_of(one, version_facts(cached, version), self.cfg)
                    event = to_event(verdict, one.model_id, version, now, impacted)
                except Exception:  # noqa: BLE001 - as in `_judge`
                    log.exception("staleness: hour verdict of %r not built; skipped", one.model_id)
                    self._on_error()
                    continue
                body = event.model_dump(mode="json")
                events.append(body)
                out.setdefault(partition, []).append(
                    (self.topic, one.model_id.encode(), orjson.dumps(body))
                )
        self._on_sent(events)
        return out

    def discard(self, partition: int) -> None:
        """The partition went back to its last checkpoint: what it judged since goes, and its
        models' marks (their clocks went back too; the records applied again judge again)."""
        self._judged.pop(partition, None)
        gone = [key for key, owner in self._partition_of.items() if owner == partition]
        for key in gone:
            self.marks.pop(key, None)
            del self._partition_of[key]

    def forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.discard(partition)
