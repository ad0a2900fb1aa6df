"""The join agent's body: decode, apply the join rules, checkpoint. Thin over `tables.join`.

Records come a fetch at a time from the runtime's feed (`agents.processor`); the group's offsets
are committed by the checkpoint once state, `joined` records and dead letters are durable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from agents.continuity import Continuity, RawRecord
from agents.ownership import Ownership
from agents.processor import Processor
from contracts import codec
from contracts.telemetry import Telemetry
from sinks.hourly import NEVER, HourlyVerdicts
from tables import keys
from tables.checkpoint import CheckpointStore, PartitionState, Retry, _once
from tables.join import JoinEffects, JoinRules
from tables.transaction import PartitionTransaction

log = logging.getLogger(__name__)

# Joined pairs after which a fetch's outputs are sent at once rather than at the checkpoint: a
# checkpoint then only waits for acknowledgements (a fetch of 100-event records joins thousands).
SHIP_AFTER_PAIRS = 1_000
SWEEP_EVERY_MS = 3_600_000  # stream time between two sweeps for idle models, at most


class JoinProcessor(Processor):
    def __init__(
        self,
        *,
        store: CheckpointStore,
        rules: JoinRules,
        topics: dict[str, str],
        limits: codec.Limits,
        producer: Callable[[], Any],
        checkpoint_interval_ms: int,
        checkpoint_max_events: int,
        checkpoint_max_keys: int,
        checkpoint_max_bytes: int | None = None,
        output_bytes: int | None = None,
        idle_wall_clock_after_ms: int,
        on_models_changed: Callable[[int, set[str]], None],
        telemetry: Telemetry,
        ownership: Ownership,
        continuity: Continuity,
        retry: Retry[Any] = _once,
        wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        max_events_per_s: float | None = None,
        derive: Callable[[PartitionTransaction, set[str]], None] | None = None,
        ship_after: int = SHIP_AFTER_PAIRS,
        max_future_skew_ms: int | None = None,
        on_models_forgotten: Callable[[int, dict[str, list[str]]], None] | None = None,
        hours: HourlyVerdicts | None = None,
    ) -> None:
        super().__init__(
            store=store,
            ownership=ownership,
            continuity=continuity,
            on_refused=telemetry.records_refused.labels("not_owned").inc,
        )
        self.rules = rules
        self.inputs = (topics["predictions"], topics["outcomes"])
        self._kind_of = {topics["predictions"]: "predictions", topics["outcomes"]: "outcomes"}
        self._other_input = {
            topics["predictions"]: topics["outcomes"],
            topics["outcomes"]: topics["predictions"],
        }
        self._joined_topic = topics["joined"]
        self._dead_letter_topic = topics["dead_letters"]
        self._limits = limits
        self._producer = producer
        self._retry = retry
        self._interval_ms = checkpoint_interval_ms
        self._max_events = checkpoint_max_events
        self._max_keys = checkpoint_max_keys
        self._max_bytes = checkpoint_max_bytes
        self._output_bytes = output_bytes
        self._idle_after_ms = idle_wall_clock_after_ms
        self._on_models_changed = on_models_changed
        self._telemetry = telemetry
        self._now = wall_clock_ms
        self._max_rate = max_events_per_s
        self._derive = derive
        # Per partition, so that a partition going back to its checkpoint drops only its own.
        self._outputs: dict[int, list[tuple[str, bytes, bytes]]] = {}  # dead letters
        self._joined: dict[int, list[dict[str, Any]]] = {}
        self._shipped: list[tuple[tuple[str, bytes, bytes], asyncio.Future[Any] | None]] = []
        self._ship_after = ship_after
        self._max_skew_ms = max_future_skew_ms
        self._on_models_forgotten = on_models_forgotten
        self._forgotten: dict[int, dict[str, list[str]]] = {}
        self._swept_at: dict[int, int] = {}  # partition -> stream time of its last idle sweep
        # Sweeping reads every model record of a partition: once per hour of stream time is
        # plenty against a horizon of a window plus a label TTL (shorter with short settings).
        self._sweep_every_ms = max(1, min(SWEEP_EVERY_MS, rules.idle_after_ms("") // 4))
        self._models: dict[int, set[str]] = {}
        # Bucket and model-record changes of the records applied and not yet settled, per
        # partition: settled once per checkpoint (and before an hour is judged), so the
        # records of an interval touch each bucket once, however finely the feed cuts their
        # fetches to interleave the two inputs. Their joined pairs are taken per fetch.
        self._unsettled: dict[int, JoinEffects] = {}
        # Pair index entries of the fetches since the last checkpoint, per partition and second
        # of deadline: written at the checkpoint, before expiry, so that a chunk holds what
        # the whole interval indexed rather than one fetch (`JoinRules.write_index`).
        self._index: dict[int, dict[int, list[list[Any]]]] = {}
        self._counted = {"predictions": [0, 0], "outcomes": [0, 0]}  # events ok, dead-lettered
        self._pending_events = 0
        self._fetch_events = 0
        self._last_checkpoint_ms = self._now()
        # Verdicts in event time (sinks.hourly): each model's next whole hour, by record key
        self._hours = hours
        self._hour_marks: dict[bytes, int] = hours.marks if hours is not None else {}
        self._first_mark = 0 if hours is not None else NEVER

    async def _after_fetch(self) -> None:
        events, self._fetch_events = self._fetch_events, 0
        if self._due():
            await self.checkpoint()
        if self._max_rate and events:
            await asyncio.sleep(events / self._max_rate)

    def _apply(self, part: PartitionState, message: Any) -> bool:
        """Apply one record (a consumer record or a `RawRecord`); True when a checkpoint is due."""
        kind = self._kind_of[message.topic]
        now = self._now()
        not_after = None if self._max_skew_ms is None else now + self._max_skew_ms
        good, bad = codec.decode_record(
            codec.SCHEMAS[kind], message.key, message.value, self._limits, not_after
        )
        # One JoinEffects per partition gathers the effects of the records since the last
        # checkpoint (`_take_outputs`, `_settle`); only its refused outcomes are handled per
        # record (they name it).
        fx = self._unsettled.get(part.partition)
        if fx is None:
            fx = self._unsettled[part.partition] = JoinEffects()
        side = part.sides.get(message.topic, 0)
        other = part.sides.get(self._other_input[message.topic], 0)  # unchanged by this record
        mark = self._hour_marks.get(message.key, self._first_mark)
        for item in good:
            ts = item["timestamp"]
            if ts >= mark:  # its model's clock crosses a whole hour: judged before this event
                mark = self._crossed(part, item, fx)
            if ts > side:
                side = ts
            part.stream_time = side if side < other else other  # `_watermark`, inlined
            if kind == "predictions":
                self.rules.on_prediction(part.txn, item, fx, settle=False)
            else:
                self.rules.on_outcome(
                    part.txn, item, part.stream_time, fx, message.offset, settle=False
                )
        if good:
            part.sides[message.topic] = side
        for rejected in bad:
            self._dead_letter(part.partition, rejected, message)
        for reason, outcome, offset in fx.rejected:
            # The outcome met its prediction now (or it had waited early and the prediction
            # came now): the dead letter names the outcome's own record.
            source = RawRecord(
                self.inputs[1],
                part.partition,
                message.offset if offset is None else offset,
                outcome["model_id"].encode(),
                orjson.dumps(outcome),
            )
            dead = codec.Rejected(reason, None, source.value or b"", "binary_label")
            self._dead_letter(part.partition, dead, source)
        fx.rejected.clear()
        part.mark(message.topic, message.offset)
        part.events += len(good) + len(bad)
        part.input_bytes += len(message.value or b"")
        for topic in self.inputs:  # a side never heard from starts its idle clock now
            part.last_wall_ms.setdefault(topic, now)
        part.last_wall_ms[message.topic] = now
        self._pending_events += len(good) + len(bad)
        self._fetch_events += len(good) + len(bad)
        counted = self._counted[kind]
        counted[0] += len(good)
        counted[1] += len(bad)
        # Checkpoints fall inside a fetch (one may hold 100 k events). Only this partition
        # changed: the others were below the bounds when they last did.
        return (
            self._pending_events >= self._max_events
            or part.txn.change_count() >= self._max_keys
            or (self._max_bytes is not None and part.input_bytes >= self._max_bytes)
            or now - self._last_checkpoint_ms >= self._interval_ms
        )

    def _crossed(self, part: PartitionState, event: dict[str, Any], fx: JoinEffects) -> int:
        assert self._hours is not None  # a mark below NEVER is only set with hours judged
        return self._hours.crossed(part.partition, part.txn, event, fx)

    def _settle(self) -> None:
        """Write the unsettled bucket and model-record changes into their partitions' state,
        and take the joined pairs and changed models of the records applied since."""
        for partition, held in self._unsettled.items():
            part = self.store.partitions.get(partition)
            if part is not None:
                self.rules.settle(part.txn, held, index=False)
                if held.index:
                    pending = self._index.setdefault(partition, {})
                    for second, entries in held.index.items():
                        pending.setdefault(second, []).extend(entries)
                    held.index.clear()
        self._take_outputs()
        self._unsettled.clear()

    def _take_outputs(self) -> None:
        """The joined pairs and changed models of the records applied so far, out of their
        effects: the pairs travel while the next records are applied."""
        for partition, held in self._unsettled.items():
            self._collect(partition, held)
            held.joined.clear()
            held.models.clear()
        for kind, counted in self._counted.items():
            if counted[0] or counted[1]:
                self._telemetry.events(kind, counted[0], counted[1])
                counted[0] = counted[1] = 0

    async def tick(self) -> None:
        """Timer: wall-clock fallback for idle inputs, then a checkpoint if one is due."""
        now = self._now()
        async with self._lock:
            for part in self.store.partitions.values():
                for topic, last in part.last_wall_ms.items():
                    if now - last > self._idle_after_ms:
                        part.sides[topic] = max(part.sides.get(topic, 0), now)
                part.stream_time = self._watermark(part.sides)
                newest = max(part.sides.values(), default=0)
                if newest:
                    self._telemetry.lag_seconds.labels(str(part.partition)).set(
                        max(now - newest, 0) / 1000
                    )
                self._telemetry.state_keys.labels(str(part.partition)).set(
                    part.txn.estimated_keys()
                )
        if now - self._last_checkpoint_ms >= self._interval_ms:
            await self.checkpoint()

    async def checkpoint(self) -> None:
        async with self._lock:
            await self._flush()

    async def _flush(self) -> None:
        started = time.perf_counter()
        self._settle()
        for partition, index in self._index.items():
            if partition in self.store.partitions:
                self.rules.write_index(self.store.partitions[partition].txn, index)
        self._index.clear()
        for part in self.store.partitions.values():
            fx = JoinEffects()
            swept = self._swept_at.get(part.partition)
            if swept is None or part.stream_time - swept >= self._sweep_every_ms:
                # before expiry: it would reschedule the idle models' buckets first
                self.rules.forget_idle(part.txn, part.stream_time, fx)
                self._swept_at[part.partition] = part.stream_time
            self.rules.expire(part.txn, part.stream_time, fx)
            if fx.forgotten:
                self._forgotten.setdefault(part.partition, {}).update(fx.forgotten)
            self._collect(part.partition, fx)
        if self._derive is not None:
            for partition, touched in self._models.items():
                if partition in self.store.partitions:
                    self._derive(self.store.partitions[partition].txn, touched)
        self.checkpointed(await self.store.checkpoint(self._send_outputs))
        self._last_checkpoint_ms = self._now()
        self._pending_events = 0
        models, self._models = self._models, {}
        forgotten, self._forgotten = self._forgotten, {}
        for partition, gone in forgotten.items():
            models.get(partition, set()).difference_update(gone)
            if self._on_models_forgotten is not None:
                self._on_models_forgotten(partition, gone)
        for partition, changed in models.items():
            self._on_models_changed(partition, changed)
        self._telemetry.checkpointed(time.perf_counter() - started)

    async def _assigned(self, partitions: set[int]) -> None:
        """After recovery: every model of a newly owned partition is rewritten to Redis.

        The previous owner may have died between its checkpoint and its speed-view write, and
        no new event need ever arrive for the model: the view is rebuilt from state here.
        """
        for partition in partitions:
            part = self.store.partition(partition)
            self._pull_back_future(part)
            models = {
                key[len(keys.MODEL) :].decode()
                for key, _ in part.txn.scan(keys.MODEL, keys.MODEL_END)
            }
            if models:
                self._on_models_changed(partition, models)
        log.info("join: owns partitions %s after recovery", sorted(partitions))

    def _pull_back_future(self, part: PartitionState) -> None:
        """Heal state written before future-dated events were refused at the door.

        Input sides and model clocks beyond wall clock + the allowed skew come back to that
        ceiling (and the far buckets go): the partition's stream time no longer runs ahead of
        real events, and the model's windows cover them again. Predictions already expired
        by the bad clock stay expired; their late labels are counted as late.
        """
        if self._max_skew_ms is None:
            return
        ceiling = self._now() + self._max_skew_ms
        ahead = {topic: t for topic, t in part.sides.items() if t > ceiling}
        healed = self.rules.pull_back(part.txn, ceiling)
        if not ahead and not healed:
            return
        for topic in ahead:
            part.sides[topic] = ceiling
        part.stream_time = min(part.stream_time, ceiling)
        part.moved = True
        log.warning(
            "join: partition %s held event time beyond the wall clock + %d ms; pulled back "
            "input clocks %s and the clocks of %d model(s)",
            part.partition,
            self._max_skew_ms,
            sorted(ahead),
            len(healed),
        )

    def _watermark(self, sides: dict[str, int]) -> int:
        """The partition's stream time: the least advanced of its two inputs.

        A pending prediction may expire only once the outcomes have moved past its deadline
        (and an early outcome once the predictions have), so under a backlog where one topic
        is consumed far ahead of the other, nothing expires that could still be joined.
        """
        return min(sides.get(topic, 0) for topic in self.inputs)

    def _due(self) -> bool:
        return (
            self._pending_events >= self._max_events
            or self.store.pending_changes() >= self._max_keys
            or (self._max_bytes is not None and self.store.pending_bytes() >= self._max_bytes)
            or self._now() - self._last_checkpoint_ms >= self._interval_ms
        )

    def _collect(self, partition: int, fx: JoinEffects) -> None:
        if fx.models:
            self._models.setdefault(partition, set()).update(fx.models)
        if fx.joined:
            self._joined.setdefault(partition, []).extend(fx.joined)
            self._telemetry.joined(len(fx.joined))

    async def _after_records(self) -> None:
        self._take_outputs()
        if sum(len(pairs) for pairs in self._joined.values()) >= self._ship_after:
            await self._ship()

    def _pending_outputs(self) -> list[tuple[str, bytes, bytes]]:
        """The `joined` records and dead letters produced since the last shipment, encoded."""
        outputs = [output for part in self._outputs.values() for output in part]
        joined = [pair for part in self._joined.values() for pair in part]
        for key, value in codec.encode_batches(
            joined, self._limits.max_events, lambda e: e["model_id"], self._output_bytes
        ):
            outputs.append((self._joined_topic, key, value))
        self._outputs.clear()
        self._joined.clear()
        return outputs

    async def _ship(self, *, raising: bool = False) -> None:
        """Send the outputs of the records applied so far, without waiting for their acks.

        They travel while the next records are applied; the checkpoint waits for the
        acknowledgements. Each output stays in `_shipped` until acknowledged (its future None
        while it is still to be sent). `raising`: a send that fails raises (the checkpoint's
        attempt fails); otherwise it is left to the checkpoint.
        """
        self._shipped.extend((output, None) for output in self._pending_outputs())
        producer = self._producer()
        for index, (output, future) in enumerate(self._shipped):
            if future is not None:
                continue
            topic, key, value = output
            try:
                self._shipped[index] = (output, await producer.send(topic, value, key=key))
            except Exception:
                if raising:
                    raise

    async def _send_outputs(self) -> None:
        """Step 1 of a checkpoint: every `joined` record and dead letter acknowledged.

        None is forgotten before it is acknowledged: a send that fails is sent again by the
        next attempt (the retry policy's, or the next checkpoint's). A send that fails for good
        leaves them here (and the checkpoint undone): the worker stops and its replacement
        replays the input, so a pair is never marked joined without its record on `joined`. A
        record sent again may be on `joined` twice; its readers keep each pair once (by
        prediction_id).
        """
        if self._hours is not None:
            for partition, verdicts in (await self._hours.outputs()).items():
                self._outputs.setdefault(partition, []).extend(verdicts)
        await self._retry(self._acknowledged, "outputs")
        self._shipped.clear()

    async def _acknowledged(self) -> None:
        await self._ship(raising=True)
        errors = []
        for index, (output, future) in enumerate(self._shipped):
            try:
                await future  # type: ignore[misc]  # every one was sent by the line above
            except Exception as exc:  # noqa: BLE001 - to be sent again; the first one raised
                self._shipped[index] = (output, None)
                errors.append(exc)
        if errors:
            raise errors[0]

    def _discard(self, partition: int) -> None:
        self._unsettled.pop(partition, None)
        self._index.pop(partition, None)
        self._forgotten.pop(partition, None)
        self._outputs.pop(partition, None)
        self._joined.pop(partition, None)
        self._models.pop(partition, None)
        if self._hours is not None:
            self._hours.discard(partition)

    def _dead_letter(self, partition: int, rejected: codec.Rejected, record: Any) -> None:
        envelope = codec.dead_letter(
            rejected, record.topic, partition, record.offset, record.key, self._output_bytes
        )
        self._outputs.setdefault(partition, []).append(
            (self._dead_letter_topic, record.key or b"", envelope)
        )
        self._telemetry.dead_letters.labels(rejected.kind).inc()

    def _reject(self, part: PartitionState, record: Any, reason: str) -> None:
        """The whole record goes to dead-letters, with the exception that stopped it."""
        rejected = codec.Rejected(reason, None, record.value or b"", "apply_failed")
        self._dead_letter(part.partition, rejected, record)
        self._telemetry.events(self._kind_of[record.topic], 0, 1)
