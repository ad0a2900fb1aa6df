"""Staleness events: judge the models whose state moved, emit on change and as a heartbeat.

Runs in the join worker, next to the state it judges (drift needs every prediction's score,
kept only there). `add` marks models whose state a checkpoint changed; `flush` judges them from
the committed state (a verdict is a function of the model's event time, so a replay judges the
same) and sends an event on the `staleness` topic when `EmissionPolicy` says one is due. Models
not changed are judged again only when their heartbeat is due.

What the registry declares (trained and deployed times, maximum age, baseline metrics) and the
downstream models a verdict impacts come from the registry's Redis cache
(`registry.cache`: `{prefix}:registry:model:{id}` and `{prefix}:impact:{id}`), so the worker
needs no database and goes on without facts (age from first sight, measured baseline) while
Redis or the registry is away. Events are at least once: a new owner of a partition emits a
first verdict for its models, and the registry records them idempotently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contracts.ids import escape_id
from contracts.telemetry import Telemetry
from staleness.config import StalenessConfig
from staleness.events import EmissionPolicy, to_event
from staleness.inputs import VersionFacts
from staleness.scorer import score_model

log = logging.getLogger(__name__)

Reader = Callable[[bytes], Any]


def version_facts(cached_model: dict[str, Any] | None, version: str) -> VersionFacts | None:
    """The registry's declared facts of one version, from its cached model document."""
    for row in (cached_model or {}).get("versions") or []:
        if row.get("version") == version:
            return VersionFacts(
                trained_at_ms=row.get("trained_at"),
                deployed_at_ms=row.get("deployed_at"),
                max_age_ms=row.get("max_age_ms"),
                baseline=dict(row.get("baseline_metrics") or {}),
            )
    return None


class StalenessEmitter:
    """Sink: `add` marks models changed, `flush` judges and emits what is due."""

    def __init__(
        self,
        reader_for: Callable[[int], Reader | None],
        send: Callable[[str, bytes], Any],
        redis: Redis,
        redis_prefix: str,
        cfg: StalenessConfig,
        heartbeat_interval_ms: int,
        telemetry: Telemetry,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._reader_for = reader_for
        self._send = send
        self._redis = redis
        self._prefix = redis_prefix
        self._cfg = cfg
        self._policy = EmissionPolicy(heartbeat_interval_ms)
        self._heartbeat_ms = heartbeat_interval_ms
        self._telemetry = telemetry
        self._now = clock_ms
        self._dirty: dict[str, int] = {}  # model -> partition
        self._known: dict[str, int] = {}
        self._judged_at: dict[str, int] = {}  # model -> wall ms of its last judgement
        # The last registry lookup of each model, for the hour verdicts (`registry_for`), and
        # the hour verdicts being shown beside the speed view.
        self._registry_seen: dict[str, tuple[dict[str, Any] | None, list[str]]] = {}
        self._showing: set[asyncio.Future[None]] = set()
        self._shown_time: dict[str, int] = {}  # model -> event_time of the verdict shown

    def forget(self, partition: int, models: dict[str, list[str]]) -> None:
        """Models the join forgot as idle: no more verdicts or heartbeats, nothing kept."""
        for model_id in models:
            self._dirty.pop(model_id, None)
            self._known.pop(model_id, None)
            self._judged_at.pop(model_id, None)
            self._policy.forget(model_id)
            self._telemetry.forget_model(model_id)
            self._registry_seen.pop(model_id, None)
            self._shown_time.pop(model_id, None)

    async def registry_for(
        self, models: list[str]
    ) -> dict[str, tuple[dict[str, Any] | None, list[str]]]:
        """Each model's registry document and impact as last looked up (`sinks.hourly`); one
        round trip for the models not looked up yet (none while Redis is away)."""
        unseen = [m for m in models if m not in self._registry_seen]
        if unseen:
            await self._registry(unseen)
        return {m: self._registry_seen.get(m, (None, [])) for m in models}

    def noted(self, events: list[dict[str, Any]]) -> None:
        """Hour verdicts the join sends (`sinks.hourly`): remembered as emitted, so the
        wall-clock path emits a state change once; each model's newest is shown now (in the
        background: the join's checkpoint does not wait for Redis)."""
        now = self._now()
        newest: dict[str, dict[str, Any]] = {}
        for event in events:
            model_id = event["model_id"]
            self._telemetry.staleness_events.labels(event["state"]).inc()
            shown = newest.get(model_id)
            if shown is None or event["event_time"] >= shown["event_time"]:
                newest[model_id] = event
        for model_id, event in newest.items():
            self._policy.record(model_id, event["model_version"], event["state"], now)
        if newest:
            task = asyncio.ensure_future(self._show_all(newest))
            self._showing.add(task)
            task.add_done_callback(self._showing.discard)

    async def _show_all(self, events: dict[str, dict[str, Any]]) -> None:
        for model_id, event in events.items():
            await self._show(model_id, event)

    def add(self, partition: int, models: set[str]) -> None:
        for model_id in models:
            self._dirty[model_id] = partition
            self._known[model_id] = partition

    async def flush(self) -> int:
        """Judge changed models and those whose heartbeat is due; returns events sent."""
        now = self._now()
        due = dict(self._dirty)
        for model_id, partition in self._known.items():
            if now - self._judged_at.get(model_id, 0) >= self._heartbeat_ms:
                due[model_id] = partition
        self._dirty.clear()
        owned: dict[str, Reader] = {}
        for model_id, partition in due.items():
            read = self._reader_for(partition)
            if read is None:  # the partition moved: its new owner judges the model
                self._known.pop(model_id, None)
                self._judged_at.pop(model_id, None)
                self._policy.forget(model_id)
                self._telemetry.forget_model(model_id)
            else:
                owned[model_id] = read
        if not owned:
            return 0
        registry = await self._registry(list(owned))  # one round trip for every model
        sent = 0
        for model_id, read in owned.items():
            self._judged_at[model_id] = now
            try:
                sent += await self._judge(read, model_id, now, *registry[model_id])
            except Exception:  # noqa: BLE001 - one model's state must not stop every verdict
                log.exception("staleness: model %r could not be judged; skipped", model_id)
                self._telemetry.timer_errors.labels("staleness_model").inc()
        return sent

    async def _judge(
        self,
        read: Reader,
        model_id: str,
        now: int,
        cached: dict[str, Any] | None,
        impacted: list[str],
    ) -> int:
        judged = score_model(
            read, model_id, self._cfg, facts_for=lambda version: version_facts(cached, version)
        )
        if judged is None:
            return 0
        version, verdict = judged
        if self._policy.due(model_id, version, verdict.state, now) is None:
            return 0
        event = to_event(verdict, model_id, version, now, impacted).model_dump(mode="json")
        try:
            await self._send(model_id, orjson.dumps(event))
        except Exception as exc:  # noqa: BLE001 - a failed send is retried at the next flush
            log.warning("staleness: sending the event of %s failed (%s)", model_id, exc)
            self._dirty[model_id] = self._known.get(model_id, 0)
            return 0
        self._policy.record(model_id, version, verdict.state, now)
        await self._show(model_id, event)
        self._telemetry.staleness_events.labels(verdict.state).inc()
        return 1

    async def _show(self, model_id: str, event: dict[str, Any]) -> None:
        """The model's current staleness beside its speed view (best effort: Redis may be down).

        The verdict of the latest event time wins (an hour verdict sent after a wall-clock one
        of a later clock does not replace it)."""
        if event["event_time"] < self._shown_time.get(model_id, -1):
            return
        self._shown_time[model_id] = event["event_time"]
        self._telemetry.model_verdict(model_id, event["state"], event["score"])
        fields = {
            k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in event.items()
        }
        key = f"{self._prefix}:model:{escape_id(model_id)}:staleness"
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        with contextlib.suppress(RedisError, OSError):
            await pipe.execute()

    async def _registry(
        self, models: list[str]
    ) -> dict[str, tuple[dict[str, Any] | None, list[str]]]:
        """Each model's cached registry document and downstream impact (none while Redis is
        away: the verdict then goes on without the registry's facts)."""
        escaped = [escape_id(m) for m in models]
        names = [n for m in escaped for n in (f"registry:model:{m}", f"impact:{m}")]
        try:
            raw = await self._redis.mget([f"{self._prefix}:{name}" for name in names])
        except (RedisError, OSError):
            raw = [None] * len(names)
        out = {}
        for index, model_id in enumerate(models):
            model_raw, impact_raw = raw[2 * index], raw[2 * index + 1]
            cached = orjson.loads(model_raw) if model_raw else None
            impacted = list(orjson.loads(impact_raw).get("impacted", [])) if impact_raw else []
            out[model_id] = self._registry_seen[model_id] = (cached, impacted)
        return out
