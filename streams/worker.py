"""The one place that wires a worker: tables, agents, timers, sinks and web pages.

`runway worker` runs every agent named in `RUNWAY_AGENTS` (join, speed_view, batch_view).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from prometheus_client import generate_latest
from redis.asyncio import Redis
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from agents.batch_view import BatchViewProcessor
from agents.continuity import Continuity
from agents.join import JoinProcessor
from agents.ownership import Ownership
from config.connections import kafka_options, redis_options, s3_keys
from config.settings import Settings
from config.windows import parse_windows
from contracts import codec
from contracts.telemetry import Telemetry
from sinks.batch_view import ParquetWriter, open_filesystem
from sinks.hourly import HourlyVerdicts
from sinks.speed_view import SpeedView
from sinks.staleness import StalenessEmitter
from staleness.config import from_settings as staleness_config
from staleness.scorer import references_to_store
from streams import collector
from streams.app import CHANGELOG_BATCH_BYTES, rocksdb_options
from streams.feed import Feed
from streams.health import degraded_reasons, judge
from streams.runtime import Runtime, is_retriable
from streams.state_snapshots import install_snapshots
from streams.watchdog import Watchdog
from tables.checkpoint import CheckpointStore
from tables.join import JoinConfig, JoinRules
from tables.transaction import PartitionTransaction

log = logging.getLogger(__name__)

CHANGELOG_CONFIGS = {"max.message.bytes": str(CHANGELOG_BATCH_BYTES + 1_048_576)}


def _state_table(app: faust.App, name: str, settings: Settings) -> Any:
    return app.Table(
        name,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        help=f"Runway {name} state (written by checkpoints, read by recovery)",
        extra_topic_configs=dict(CHANGELOG_CONFIGS),
        options=rocksdb_options(settings),
    )


def _kafka_retry(settings: Settings) -> Any:
    """Retriable Kafka errors are retried with backoff until the checkpoint's deadline.

    tenacity rather than a hand-written loop; the deadline (default 600 s) lets brokers be away
    for minutes without a restart, then the error escapes and the worker stops.
    """

    async def retry(step: Any, what: str) -> Any:
        def warn(state: Any) -> None:
            log.warning(
                "checkpoint %s: %s; retrying (attempt %d)",
                what,
                state.outcome.exception() if state.outcome else "?",
                state.attempt_number,
            )

        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_retriable),
            stop=stop_after_delay(settings.checkpoint_retry_timeout_s),
            wait=wait_exponential(multiplier=0.1, max=5.0),
            before_sleep=warn,
            reraise=True,
        ):
            with attempt:
                return await step()

    return retry


def _checkpoint_store(runtime: Runtime, table: Any, settings: Settings) -> CheckpointStore:
    return CheckpointStore(
        changelog_topic=runtime.changelog_topic(table),
        db_for=runtime.db_for(table),
        producer=runtime.producer,
        commit=runtime.commit,
        retry=_kafka_retry(settings),
    )


def _continuity(runtime: Runtime, telemetry: Telemetry) -> Continuity:
    return Continuity(runtime.read_range, runtime.earliest, telemetry.records_filled.inc)


def build_worker(app: faust.App, settings: Settings) -> Telemetry:
    collector.pace(settings.gc_gen0_threshold)
    telemetry = Telemetry()
    runtime = Runtime(
        app,
        kafka_options(settings),
        bulk_standby=settings.standby_bulk_apply,
        bulk_restore=settings.restore_bulk_apply,
    )
    enabled = {name.strip() for name in settings.agents.split(",") if name.strip()}
    windows = parse_windows(settings.windows)
    topics = settings.topic_names
    processors: list[Any] = []  # (processor, its feed): rebalances, the watchdog, /health
    feed_records = max(settings.stream_buffer_maxsize, 1_000)
    feed_bytes = settings.stream_buffer_max_bytes

    join_table = _state_table(app, "join", settings)
    join_store = _checkpoint_store(runtime, join_table, settings)

    redis = Redis.from_url(
        settings.redis_url,
        **redis_options(settings),
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=5,
    )

    def reader_for(partition: int) -> Any:
        """Committed state of an owned partition (None once it moved to another worker)."""
        state = join_store.partitions.get(partition)
        return None if state is None else PartitionTransaction(state.db).get

    speed_view: SpeedView | None = None
    if "speed_view" in enabled:
        speed_view = SpeedView(
            redis,
            reader_for,
            windows,
            settings.redis_key_prefix,
            settings.speed_view_interval_ms,
            telemetry,
        )

    judging = staleness_config(settings)
    staleness: StalenessEmitter | None = None
    if "staleness" in enabled:

        async def send_staleness(key: str, value: bytes) -> None:
            await (await runtime.producer().send(topics["staleness"], value, key=key.encode()))

        staleness = StalenessEmitter(
            reader_for,
            send_staleness,
            redis,
            settings.redis_key_prefix,
            judging,
            settings.staleness_heartbeat_interval_ms,
            telemetry,
        )

    def store_references(txn: PartitionTransaction, models: set[str]) -> None:
        """The frozen drift reference lives in the join state, written with its buckets.

        One model whose state cannot be summarized must not fail the checkpoint of every
        other: its reference waits (it is tried again at its next change), the error counted.
        """
        for model_id in models:
            try:
                changes = references_to_store(txn.get, model_id, judging)
            except Exception:  # noqa: BLE001 - isolation per model, see above
                log.exception("staleness: reference of model %r not refreshed", model_id)
                telemetry.timer_errors.labels("reference_model").inc()
                continue
            for key, value in changes:
                txn.set(key, value)

    views = [sink for sink in (speed_view, staleness) if sink is not None]

    def models_changed(partition: int, models: set[str]) -> None:
        for sink in views:
            sink.add(partition, models)
        if speed_view is not None and not runtime.stopping():
            speed_view.soon()  # the checkpoint just made them durable: show them now

    def models_forgotten(partition: int, models: dict[str, list[str]]) -> None:
        log.info("join: partition %s forgot %d idle model(s)", partition, len(models))
        for sink in views:
            sink.forget(partition, models)

    if "join" in enabled:
        rules = JoinRules(
            JoinConfig(
                label_ttl_for=settings.label_ttl_for,
                early_outcome_ttl_ms=settings.early_outcome_ttl_ms,
                done_retention_ms=settings.done_retention_ms,
                windows=windows,
            )
        )
        hours = None
        if staleness is not None:  # verdicts at every whole hour of each model's event time
            hours = HourlyVerdicts(
                cfg=judging,
                topic=topics["staleness"],
                settle=functools.partial(rules.settle, index=False),
                registry=staleness.registry_for,
                on_sent=staleness.noted,
                on_error=telemetry.timer_errors.labels("staleness_hour").inc,
            )
        join = JoinProcessor(
            store=join_store,
            rules=rules,
            topics=topics,
            limits=codec.Limits(settings.max_batch_events, settings.max_message_bytes),
            producer=runtime.producer,
            checkpoint_interval_ms=settings.checkpoint_interval_ms,
            checkpoint_max_events=settings.checkpoint_max_events,
            checkpoint_max_keys=settings.checkpoint_max_keys,
            idle_wall_clock_after_ms=settings.wall_clock_expiry_after_ms or settings.label_ttl_ms,
            on_models_changed=models_changed,
            telemetry=telemetry,
            ownership=Ownership(),
            continuity=_continuity(runtime, telemetry),
            retry=_kafka_retry(settings),
            max_events_per_s=settings.max_events_per_s,
            max_future_skew_ms=settings.max_future_skew_ms,
            on_models_forgotten=models_forgotten,
            checkpoint_max_bytes=settings.checkpoint_max_bytes,
            output_bytes=settings.output_record_bytes,
            derive=store_references if staleness is not None else None,
            hours=hours,
        )
        processors.append((join, runtime.feed(join.inputs, feed_records, feed_bytes)))
        checkpoint_interval = min(settings.checkpoint_interval_ms / 1000, 1.0)

        _timer(app, runtime, telemetry, "join", checkpoint_interval / 2, join.tick, fatal=True)

    if speed_view is not None:
        view = speed_view

        _timer(
            app,
            runtime,
            telemetry,
            "speed_view",
            settings.speed_view_interval_ms / 2000,
            view.flush,
        )

    if staleness is not None:
        judge_models = staleness

        _timer(app, runtime, telemetry, "staleness", 1.0, judge_models.flush)

    batch_view: BatchViewProcessor | None = None
    if "batch_view" in enabled:
        seen_table = _state_table(app, "batch_view", settings)
        filesystem, root = open_filesystem(
            settings.batch_view_uri,
            settings.s3_endpoint_url,
            *s3_keys(settings),
            settings.s3_region,
        )
        batch_view = BatchViewProcessor(
            store=_checkpoint_store(runtime, seen_table, settings),
            writer=ParquetWriter(filesystem, root),
            topic=topics["joined"],
            max_rows=settings.batch_view_max_rows,
            max_age_ms=int(settings.batch_view_max_age_s * 1000),
            retention_ms=settings.label_ttl_ms + settings.done_retention_ms,
            telemetry=telemetry,
            ownership=Ownership(),
            continuity=_continuity(runtime, telemetry),
            producer=runtime.producer,
            dead_letter_topic=topics["dead_letters"],
            dead_letter_bytes=settings.output_record_bytes,
        )
        processors.append((batch_view, runtime.feed(batch_view.inputs, feed_records, feed_bytes)))
        writer = batch_view

        _timer(app, runtime, telemetry, "batch_view", 0.5, writer.tick, fatal=True)

    state_tables = [(join_table, join_store)]
    if batch_view is not None:
        state_tables.append((seen_table, batch_view.store))
    snapshot_timer = install_snapshots(
        settings, state_tables, runtime.stopping, runtime.kept_in_group, telemetry.registry
    )
    if snapshot_timer is not None:
        _timer(app, runtime, telemetry, "state_snapshot", *snapshot_timer)

    for processor, feed in processors:
        _run(app, runtime, processor, feed)

    feeds = [feed for _, feed in processors]
    watchdog = Watchdog(
        runtime=runtime,
        processors=[processor for processor, _ in processors],
        delivered=lambda: sum(feed.delivered for feed in feeds),
        waiting=lambda tp: sum(feed.waiting(tp) for feed in feeds),
        on_seek=telemetry.watchdog_seeks.inc,
        fetched=runtime.fetches,
    )

    _timer(app, runtime, telemetry, "watchdog", 1.0, watchdog.tick)

    async def assigned(assignment: set[tuple[str, int]]) -> None:
        """After recovery, before the streams resume: each processor learns what it owns,
        the group's offsets are set to the state's markers, and the consumer seeks there.

        The seek is ours, not left to Faust's "seek to committed": aiokafka's
        `seek_to_committed` skips a committed offset of 0, and the records fetched during
        recovery have just been dropped with the reset, so a partition whose marker is 0
        kept its position past them and was never read again (a stall only the watchdog
        ended). The commit may also be skipped (another rebalance already requested).
        """
        for processor, feed in processors:
            owned = {p for t, p in assignment if t in feed.topics}
            await processor.on_assigned(owned)
            resume = processor.resume_offsets()
            await runtime.commit(resume)
            await runtime.seek(resume, unless_revoked=True)

    async def revoked(tps: set[tuple[str, int]]) -> None:
        for processor, feed in processors:
            mine = {(t, p) for t, p in tps if t in feed.topics}
            await processor.on_revoked({p for _, p in mine})
            runtime.forget(mine)

    runtime.on_assigned(assigned)
    runtime.on_revoked(revoked)

    started = time.time()

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        owned = runtime.assignment()
        ends = {tp: runtime.highwater(*tp) for tp in owned}

        def waiting(processor: Any, feed: Feed) -> bool:
            return len(feed) > 0 or any(
                (ends.get(tp) or 0) > at for tp, at in processor.resume_offsets().items()
            )

        now = time.monotonic()
        rebalance_age = runtime.rebalance_age(now)
        verdict = judge(
            now=now,
            recovering=rebalance_age is not None,
            rebalance_age=rebalance_age,
            restoring=runtime.restoring(),
            processors=[(processor, waiting(processor, feed)) for processor, feed in processors],
            stall_s=settings.health_stall_s,
            max_checkpoint_age_s=settings.health_max_checkpoint_age_s,
            degraded=degraded_reasons(
                [
                    ("redis", lambda: speed_view is not None and speed_view.failing),
                    ("s3", lambda: batch_view is not None and batch_view.failing),
                ]
            ),
        )
        return web.json(
            {
                "status": verdict.status,
                "reasons": list(verdict.reasons),
                "uptime_s": round(time.time() - started, 1),
                "agents": sorted(enabled),
                "join_partitions": sorted(join_store.partitions),
                "watchdog_seeks": watchdog.seeks,
            },
            status=verdict.http_status,
        )

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(
            generate_latest(telemetry.registry), content_type="text/plain; version=0.0.4"
        )

    return telemetry


def _run(app: faust.App, runtime: Runtime, processor: Any, feed: Feed) -> None:
    """The processor's loop over its feed, as one of the app's tasks."""

    @app.task
    async def run() -> None:
        await processor.run(feed, runtime.fatal, runtime.stopping)


def _timer(
    app: faust.App,
    runtime: Runtime,
    telemetry: Telemetry,
    name: str,
    interval_s: float,
    body: Callable[[], Awaitable[object]],
    *,
    fatal: bool = False,
) -> None:
    """A periodic task that never takes the worker down by accident.

    An error is logged and counted (`runway_timer_errors_total{timer}`) and the next tick tries
    again: the views are rewritten from state. A timer that checkpoints (`fatal`) is the
    exception: its error means a checkpoint failed for good (retriable errors were retried
    until `RUNWAY_CHECKPOINT_RETRY_TIMEOUT_S`), and the worker stops with one line, as when
    a record's checkpoint fails. Nothing runs once the worker is stopping: the producer and
    tables go away under it, and the last checkpoint stands.
    """

    async def tick() -> None:
        if runtime.stopping():
            return
        try:
            await body()
        except Exception as exc:
            if runtime.stopping():
                return
            if fatal:
                log.exception("%s timer failed", name)
                runtime.fatal(f"{name} timer: {type(exc).__name__}: {exc}")
                return
            log.exception("%s timer failed; trying again at the next tick", name)
            telemetry.timer_errors.labels(name).inc()

    tick.__name__ = tick.__qualname__ = f"{name}_tick"  # Faust names timers after functions
    app.timer(interval=interval_s)(tick)
