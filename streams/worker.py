"""The one place that wires a worker: tables, agents, timers, sinks and web pages.

`runway worker` runs every agent named in `RUNWAY_AGENTS` (join, speed_view, batch_view).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from faust.types import TP
from prometheus_client import generate_latest
from redis.asyncio import Redis

from agents.batch_view import BatchViewProcessor
from agents.continuity import Continuity
from agents.join import JoinProcessor
from agents.ownership import Ownership
from config.settings import Settings
from sinks.batch_view import ParquetWriter, open_filesystem
from sinks.speed_view import SpeedView
from sinks.staleness import StalenessEmitter
from staleness.config import from_settings as staleness_config
from staleness.scorer import references_to_store
from streams import codec
from streams.app import CHANGELOG_BATCH_BYTES
from streams.backfill import read_range
from streams.telemetry import Telemetry
from tables.checkpoint import CheckpointStore
from tables.join import JoinConfig, JoinRules
from tables.transaction import PartitionTransaction
from tables.windows import parse_windows

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
    )


def _raw_topic(app: faust.App, *names: str) -> Any:
    return app.topic(
        *names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


def _producer(app: faust.App) -> Any:
    return app.producer._producer  # type: ignore[attr-defined]  # aiokafka's, under Faust's


def _checkpoint_store(app: faust.App, table: Any) -> CheckpointStore:
    return CheckpointStore(
        table.changelog_topic.get_topic_name(),
        table.data._db_for_partition,
        lambda: _producer(app),
        _unbound_ack,
        _committer(app),
    )


def _committer(app: faust.App) -> Any:
    async def commit(offsets: dict[tuple[str, int], int]) -> None:
        if offsets:
            tps = {TP(t, p): o for (t, p), o in offsets.items()}
            await app.consumer._commit(tps)  # type: ignore[attr-defined]

    return commit


def _continuity(app: faust.App, settings: Settings, telemetry: Telemetry) -> Continuity:
    async def earliest(topic: str, partition: int) -> int:
        tp = TP(topic, partition)
        return int((await app.consumer.earliest_offsets(tp)).get(tp) or 0)

    def read(topic: str, partition: int, start: int, end: int) -> Any:
        return read_range(settings.kafka_bootstrap, topic, partition, start, end)

    return Continuity(read, earliest, telemetry.records_filled.inc)


def _ownership(app: faust.App) -> Ownership:
    return Ownership(lambda: bool(app.rebalancing))


def build_worker(app: faust.App, settings: Settings) -> Telemetry:
    telemetry = Telemetry()
    enabled = {name.strip() for name in settings.agents.split(",") if name.strip()}
    windows = parse_windows(settings.windows)
    topics = settings.topic_names
    processors: list[Any] = []  # (processor, its input topics): rebalances and the watchdog

    join_table = _state_table(app, "join", settings)
    join_store = _checkpoint_store(app, join_table)

    redis = Redis.from_url(
        settings.redis_url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=5
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
            await (await _producer(app).send(topics["staleness"], value, key=key.encode()))

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
        """The frozen drift reference lives in the join state, written with its buckets."""
        for model_id in models:
            for key, value in references_to_store(txn.get, model_id, judging):
                txn.set(key, value)

    views = [sink for sink in (speed_view, staleness) if sink is not None]

    def models_changed(partition: int, models: set[str]) -> None:
        for sink in views:
            sink.add(partition, models)

    if "join" in enabled:
        rules = JoinRules(
            JoinConfig(
                label_ttl_for=settings.label_ttl_for,
                early_outcome_ttl_ms=settings.early_outcome_ttl_ms,
                done_retention_ms=settings.done_retention_ms,
                windows=windows,
            )
        )
        join = JoinProcessor(
            join_store,
            rules,
            topics,
            codec.Limits(settings.max_batch_events, settings.max_message_bytes),
            lambda: _producer(app),
            settings.checkpoint_interval_ms,
            settings.checkpoint_max_events,
            settings.checkpoint_max_keys,
            settings.wall_clock_expiry_after_ms or settings.label_ttl_ms,
            models_changed,
            telemetry,
            _ownership(app),
            _continuity(app, settings, telemetry),
            max_events_per_s=settings.max_events_per_s,
            derive=store_references if staleness is not None else None,
        )

        @app.agent(_raw_topic(app, topics["predictions"], topics["outcomes"]), name="join")
        async def join_agent(stream: faust.StreamT) -> None:
            manual = stream.noack()  # type: ignore[attr-defined]
            join_store.ack = manual.ack  # type: ignore[method-assign]
            async for event in manual.events():
                await join.process(event)

        @app.timer(interval=min(settings.checkpoint_interval_ms / 1000, 1.0) / 2)
        async def join_tick() -> None:
            await join.tick()

        processors.append((join, {topics["predictions"], topics["outcomes"]}))

    if speed_view is not None:
        view = speed_view

        @app.timer(interval=settings.speed_view_interval_ms / 1000 / 2)
        async def speed_view_tick() -> None:
            await view.flush()

    if staleness is not None:
        judge = staleness

        @app.timer(interval=1.0)
        async def staleness_tick() -> None:
            await judge.flush()

    if "batch_view" in enabled:
        seen_table = _state_table(app, "batch_view", settings)
        seen_store = _checkpoint_store(app, seen_table)
        filesystem, root = open_filesystem(
            settings.batch_view_uri,
            settings.s3_endpoint_url,
            settings.aws_access_key_id,
            settings.aws_secret_access_key,
            settings.s3_region,
        )
        batch_view = BatchViewProcessor(
            seen_store,
            ParquetWriter(filesystem, root),
            topics["joined"],
            settings.batch_view_max_rows,
            int(settings.batch_view_max_age_s * 1000),
            settings.label_ttl_ms + settings.done_retention_ms,
            telemetry,
            _ownership(app),
            _continuity(app, settings, telemetry),
        )

        @app.agent(_raw_topic(app, topics["joined"]), name="batch_view")
        async def batch_view_agent(stream: faust.StreamT) -> None:
            manual = stream.noack()  # type: ignore[attr-defined]
            seen_store.ack = manual.ack  # type: ignore[method-assign]
            async for event in manual.events():
                await batch_view.process(event)

        @app.timer(interval=0.5)
        async def batch_view_tick() -> None:
            await batch_view.tick()

        processors.append((batch_view, {topics["joined"]}))

    idle_ticks = [0]
    seen = [-1]

    @app.timer(interval=1.0)
    async def progress_watchdog() -> None:
        """Re-seek owned input partitions that have records but stopped arriving.

        After SIGKILL storms we saw Faust stop fetching one partition for good (paused for a
        full buffer, or left behind by a rebalance) while the rest flowed: the group kept its
        lag forever. When no agent has been handed anything for 3 s, every queue is empty, so a
        partition whose end is past our checkpoint marker is stalled: resume it and seek it to
        the marker (input below the marker is skipped anyway). The seek runs in the consumer's
        own thread (`seek_wait`): a seek from this loop raced aiokafka's fetcher and crashed
        the worker (KeyError in `fetched_records`) in a demo run.
        """
        received = sum(processor.received for processor, _ in processors)
        idle_ticks[0] = idle_ticks[0] + 1 if received == seen[0] else 0
        seen[0] = received
        consumer: Any = app.consumer
        if idle_ticks[0] < 3 or app.rebalancing or not consumer.flow_active:
            return
        idle_ticks[0] = 0
        owned = [tp for tp in consumer.assignment() if any(tp.topic in n for _, n in processors)]
        if not owned:
            return
        ends = await consumer.highwaters(*owned)
        stalled: dict[Any, int] = {}
        for processor, names in processors:
            for tp in owned:
                if tp.topic not in names or tp.partition not in processor.store.partitions:
                    continue
                resume_at = processor.store.partitions[tp.partition].applied.get(tp.topic, -1) + 1
                if ends.get(tp, 0) > resume_at:
                    log.warning(
                        "progress watchdog: %s stalled at %s of %s; seeking",
                        tp,
                        resume_at,
                        ends[tp],
                    )
                    stalled[tp] = resume_at
        if stalled:
            consumer._buffered_partitions.difference_update(stalled)
            consumer.resume_partitions(list(stalled))
            await consumer.seek_wait(stalled)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def on_rebalance_complete(sender: Any, **kwargs: Any) -> None:
        """After recovery, before streams resume: each processor learns what it owns."""
        assignment = app.consumer.assignment()
        for processor, names in processors:
            await processor.on_assigned({tp.partition for tp in assignment if tp.topic in names})

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        for processor, names in processors:
            await processor.on_revoked({tp.partition for tp in revoked if tp.topic in names})

    started = time.time()

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json(
            {
                "status": "ok",
                "uptime_s": round(time.time() - started, 1),
                "agents": sorted(enabled),
                "join_partitions": sorted(join_store.partitions),
            }
        )

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(
            generate_latest(telemetry.registry), content_type="text/plain; version=0.0.4"
        )

    return telemetry


async def _unbound_ack(event: Any) -> None:
    raise RuntimeError("CheckpointStore.ack is bound by its agent when the stream starts")
