"""The retrain agent (`runway retrain-agent`): staleness events in, retrain requests out, behind
the breaker, with a dead-letter queue. Its own process and consumer group, so a hung orchestrator
never touches the join workers.

Offsets: a staleness record's offset is committed only once every request it produced has a
durable fate (started or failed recorded in the registry, or dead-lettered: the `retrain-dlq`
record acknowledged), and a `retrain-dlq` record's only once the replayer has settled it: started,
failed, or parked after RUNWAY_RETRAIN_MAX_REPLAYS failed replays (`retrain.replay`), so one
request the orchestrator keeps failing cannot hold back the queue behind it. A crash replays what
was not settled; the request's idempotency key keeps the orchestrator from starting a run twice.

Status writes to the registry are retried while the database is away; one it refuses for good
(`registry.dberrors`: a value too long for its column, say) is logged, counted in
`runway_retrain_unrecorded_total` and skipped, so the request goes on without its row.

Memory across restarts: the episode/cooldown memory is a fold over the `staleness` topic (7 days
retained, more than the 24 h cooldown) up to the group's committed offsets, rebuilt at start. The
topic is the source of the decisions, so the fold gives exactly the memory the agent had, with
nothing else to keep consistent; the registry only shows the statuses.

One agent process reads all partitions (manual assignment; the group holds its offsets): the
retrain load is a few requests a day per model, far from needing a second process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from config.connections import kafka_options
from config.settings import Settings
from registry.dberrors import is_database_error, is_transient
from retrain.breaker import CircuitBreaker
from retrain.dispatch import Dispatcher, Outcome
from retrain.episodes import EpisodeTracker
from retrain.messages import RetrainRequest, StalenessView
from retrain.offsets import PartitionOffsets
from retrain.recorder import RetrainRecorder
from retrain.replay import Replay, replay
from retrain.telemetry import RetrainTelemetry

log = logging.getLogger("runway.retrain")


def group_id(settings: Settings) -> str:
    return settings.retrain_group_id or f"{settings.app_id}-retrain"


@dataclass(frozen=True)
class Job:
    request: RetrainRequest
    partition: int
    offset: int


class RetrainAgent:
    def __init__(
        self,
        settings: Settings,
        dispatcher: Dispatcher,
        recorder: RetrainRecorder,
        wall_ms: Callable[[], int],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.breaker: CircuitBreaker = dispatcher.breaker
        self.recorder = recorder
        self.wall_ms = wall_ms
        self.sleep = sleep
        self.tracker = EpisodeTracker(settings.retrain_cooldown_ms, settings.retrain_dependents)
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.telemetry = RetrainTelemetry(self.breaker, self.queue.qsize)
        self.offsets = {p: PartitionOffsets() for p in range(settings.partitions)}
        self.busy: dict[str, int] = {}  # model_id -> requests in flight (queued, sending, DLQ)
        self.staleness = settings.topic("staleness")
        self.dlq = settings.topic("retrain_dlq")
        self.ready = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq_consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        group = group_id(s)
        self._consumer = AIOKafkaConsumer(
            **kafka_options(s), group_id=group, enable_auto_commit=False,
            auto_offset_reset="earliest",
        )  # fmt: skip
        self._dlq_consumer = AIOKafkaConsumer(
            **kafka_options(s), group_id=f"{group}-dlq",
            enable_auto_commit=False, auto_offset_reset="earliest",
        )  # fmt: skip
        self._producer = AIOKafkaProducer(**kafka_options(s), acks="all")
        await self._producer.start()
        await self._consumer.start()
        await self._dlq_consumer.start()
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._recover()
            self._dlq_consumer.assign([TopicPartition(self.dlq, p) for p in range(s.partitions)])
            tasks = [asyncio.create_task(self._intake(), name="retrain-intake")]
            tasks += [
                asyncio.create_task(self._worker(), name=f"retrain-worker-{i}")
                for i in range(s.retrain_max_concurrent)
            ]
            tasks.append(asyncio.create_task(self._replayer(), name="retrain-replayer"))
            tasks.append(asyncio.create_task(self._committer(), name="retrain-committer"))
            self.ready.set()
            waiter = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            for task in done:
                if task is not waiter and task.exception():
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._commit()
            await self._dlq_consumer.stop()
            await self._consumer.stop()
            await self._producer.stop()

    async def _recover(self) -> None:
        """Fold the staleness history up to the committed offsets, then resume there."""
        assert self._consumer is not None
        parts = [TopicPartition(self.staleness, p) for p in range(self.settings.partitions)]
        self._consumer.assign(parts)
        committed = {tp: await self._consumer.committed(tp) for tp in parts}
        upto = {tp: off for tp, off in committed.items() if off}
        folded = await self._fold(upto) if upto else 0
        for tp in parts:
            off = committed[tp]
            if off:
                self._consumer.seek(tp, off)
                self.offsets[tp.partition].seen(off - 1, 0)
            else:
                await self._consumer.seek_to_beginning(tp)
        log.info("retrain agent: memory of %d models from %d past events", len(self.tracker.models),
                 folded)  # fmt: skip

    async def _fold(self, upto: dict[TopicPartition, int]) -> int:
        reader = AIOKafkaConsumer(**kafka_options(self.settings), enable_auto_commit=False)
        await reader.start()
        count = 0
        try:
            reader.assign(list(upto))
            await reader.seek_to_beginning(*upto)
            remaining = {tp for tp, off in upto.items() if await reader.position(tp) < off}
            while remaining:
                batch = await reader.getmany(*remaining, timeout_ms=1000)
                for tp, records in batch.items():
                    for record in records:
                        event = self._parse(record.value) if record.offset < upto[tp] else None
                        if event is not None:
                            self.tracker.observe(event)
                            count += 1
                    if records and records[-1].offset + 1 >= upto[tp]:
                        remaining.discard(tp)
        finally:
            await reader.stop()
        return count

    # -- staleness in ---------------------------------------------------------------------------

    def _parse(self, value: bytes | None) -> StalenessView | None:
        try:
            return StalenessView.model_validate_json(value or b"")
        except ValidationError as exc:
            log.warning("retrain agent: unreadable staleness event skipped: %s", exc)
            return None

    async def _intake(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    await self._observe(tp.partition, record.offset, record.value)

    async def _observe(self, partition: int, offset: int, value: bytes | None) -> None:
        event = self._parse(value)
        if event is None:
            self.offsets[partition].seen(offset, 0)
            return
        verdict = self.tracker.observe(event, lambda model: self.busy.get(model, 0) > 0)
        if verdict.new_version_of is not None:
            done = verdict.new_version_of
            await self._record(done, "succeeded", f"new version {event.model_version}")
        for why in verdict.suppressed:
            log.info("retrain agent: no request for %s", why)
        self.offsets[partition].seen(offset, len(verdict.requests))
        for request in verdict.requests:
            self.busy[request.model_id] = self.busy.get(request.model_id, 0) + 1
            await self._record(request, "queued", request.reason)
            self.queue.put_nowait(Job(request, partition, offset))

    # -- requests out ---------------------------------------------------------------------------

    async def _worker(self) -> None:
        assert self._producer is not None
        while True:
            job = await self.queue.get()
            self.telemetry.in_flight.inc()
            try:
                outcome = await self.dispatcher.deliver(job.request)
                self.telemetry.attempts.inc(outcome.attempts)
                if outcome.fate == "dead-lettered":
                    await self._dead_letter(job.request, outcome)
                else:
                    await self._settle(job.request, outcome.fate, outcome.detail)
                self.offsets[job.partition].settled(job.offset)
            finally:
                self.telemetry.in_flight.dec()

    async def _dead_letter(self, request: RetrainRequest, outcome: Outcome) -> None:
        assert self._producer is not None
        at = self.wall_ms()
        letter = request.model_copy(update={"dlq_reason": outcome.detail, "dead_lettered_at": at})
        await self._producer.send_and_wait(
            self.dlq, letter.model_dump_json().encode(), key=request.model_id.encode()
        )
        await self._record(request, "dead-lettered", outcome.detail, at)

    async def _settle(self, request: RetrainRequest, status: str, detail: str) -> None:
        """Started, failed or parked: the request is no longer in flight."""
        await self._record(request, status, detail)
        left = self.busy.get(request.model_id, 1) - 1
        if left > 0:
            self.busy[request.model_id] = left
        else:
            self.busy.pop(request.model_id, None)

    async def _record(
        self, request: RetrainRequest, status: str, detail: str | None, at: int | None = None
    ) -> None:
        """Into the registry, retried until it takes: an unrecorded fate is not durable."""
        at = self.wall_ms() if at is None else at
        self.telemetry.requests.labels(status).inc()
        log.info("retrain %s %s@%s: %s (%s)", request.request_id, request.model_id,
                 request.model_version, status, detail)  # fmt: skip
        while True:
            try:
                await asyncio.to_thread(
                    self.recorder.record_retrain, request.request_id, request.model_id,
                    request.model_version, request.episode, status, detail, at,
                )  # fmt: skip
                return
            except Exception as exc:
                if is_database_error(exc) and not is_transient(exc):
                    log.error("retrain %s: the registry refused status %s for good (%r); going on "
                              "without it", request.request_id, status, exc)  # fmt: skip
                    self.telemetry.unrecorded.labels(status).inc()
                    return
                # the registry is down: keep the offset, try again
                log.warning("retrain agent: registry write failed (%r); retrying", exc)
                await self.sleep(self.settings.retrain_poll_s)

    # -- the dead-letter queue ----------------------------------------------------------------

    async def _replayer(self) -> None:
        """Settles dead letters in order (`retrain.replay`): started, failed, or parked once it
        has failed RUNWAY_RETRAIN_MAX_REPLAYS replays, so the next one gets its turn."""
        assert self._dlq_consumer is not None
        while True:
            record = await self._dlq_consumer.getone()
            try:
                request = RetrainRequest.model_validate_json(record.value or b"")
            except ValidationError as exc:
                log.error("retrain agent: unreadable dead letter skipped: %s", exc)
            else:
                self.busy.setdefault(request.model_id, 1)
                done = await replay(
                    request, self.dispatcher, max_replays=self.settings.retrain_max_replays,
                    poll_s=self.settings.retrain_poll_s, sleep=self.sleep,
                    observe=lambda outcome: self.telemetry.attempts.inc(outcome.attempts),
                )  # fmt: skip
                if done.parked:
                    await self._park(request, done)
                else:
                    await self._settle(request, done.outcome.fate, done.outcome.detail)
                self.telemetry.replayed.inc()
            tp = TopicPartition(record.topic, record.partition)
            await self._dlq_consumer.commit({tp: record.offset + 1})

    async def _park(self, request: RetrainRequest, done: Replay) -> None:
        """Given up after its replays: recorded `parked` with the last error, for a person."""
        detail = f"parked after {done.failed_replays} failed replays; last: {done.outcome.detail}"
        log.error("retrain %s %s@%s: %s", request.request_id, request.model_id,
                  request.model_version, detail)  # fmt: skip
        self.telemetry.parked.labels(done.outcome.failure or "unknown").inc()
        await self._settle(request, "parked", detail)

    async def _committer(self) -> None:
        while True:
            await self.sleep(self.settings.retrain_commit_interval_s)
            await self._commit()

    async def _commit(self) -> None:
        assert self._consumer is not None
        offsets = {}
        for partition, tracker in self.offsets.items():
            off = tracker.committable()
            if off is not None:
                offsets[TopicPartition(self.staleness, partition)] = off
        if offsets:
            await self._consumer.commit(offsets)
