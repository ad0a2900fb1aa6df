"""`runway validate-failover`, the reading: each dependency asked once, with a deadline; the
verdicts are `registry.validate`'s. A dependency that does not answer becomes that check's
verdict, never an exception: the command must report on a broken system, that is its use."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

import orjson
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from autoscale.probe import LagProbe
from config.connections import kafka_options, redis_options
from config.settings import Settings
from contracts.ids import escape_id
from registry import graph
from registry.backup import sqlite_file
from registry.store import Store, default_dsn
from registry.validate import (
    Check,
    PartitionState,
    Status,
    brokers_check,
    graph_check,
    lag_check,
    registry_check,
    unreachable,
    views_check,
)

Clock = Callable[[], int]


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


async def _bounded(name: str, work: Awaitable[Check], timeout_s: float, status: Status) -> Check:
    try:
        return await asyncio.wait_for(work, timeout_s)
    except TimeoutError:
        return unreachable(name, f"no answer within {timeout_s:g} s", status)
    except Exception as exc:  # noqa: BLE001 - a check reports its dependency's failure
        return unreachable(name, _reason(exc), status)


def _read_registry(settings: Settings) -> tuple[set[str], list[graph.Edge]]:
    path = sqlite_file(settings.registry_dsn or default_dsn(settings))
    if path is not None and not path.is_file():  # connecting would create an empty one
        raise FileNotFoundError(f"no registry database at {path}")
    store = Store.from_settings(settings)
    try:
        return {m.model_id for m in store.list_models()}, store.edges()
    finally:
        store.dispose()


async def _cached_impacts(redis: Redis, prefix: str, models: list[str]) -> dict[str, Any]:
    if not models:
        return {}
    raw = await redis.mget([f"{prefix}:impact:{escape_id(m)}" for m in models])
    return {
        m: None if value is None else orjson.loads(value).get("impacted")
        for m, value in zip(models, raw, strict=True)
    }


async def _view_clocks(redis: Redis, prefix: str) -> dict[str, int | None]:
    members = sorted(
        m.decode() if isinstance(m, bytes) else m for m in await redis.smembers(f"{prefix}:models")
    )
    pipe = redis.pipeline(transaction=False)
    for m in members:
        pipe.hget(f"{prefix}:model:{escape_id(m)}", "clock")
    found = await pipe.execute()
    return {m: None if c is None else int(c) for m, c in zip(members, found, strict=True)}


async def _lag(settings: Settings) -> Check:
    async with LagProbe.for_join(settings) as probe:
        lag = await probe.sample()
    return lag_check(lag.group, lag.lag_s, lag.offset_lag, settings.failover_max_lag_s)


async def _brokers(settings: Settings) -> Check:
    admin = AIOKafkaAdminClient(**kafka_options(settings), request_timeout_ms=5000)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        topics = sorted(settings.topic_names.values())
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    live = {int(b["node_id"]) for b in cluster["brokers"]}
    partitions, missing = [], []
    for t in described:
        if t["error_code"] or not t["partitions"]:
            missing.append(t["topic"])
            continue
        partitions += [
            PartitionState(t["topic"], p["partition"], p["leader"], tuple(p["replicas"]),
                           tuple(p["isr"]))
            for p in t["partitions"]
        ]  # fmt: skip
    return brokers_check(live, partitions, missing, settings.effective_min_insync_replicas)


def _s3(settings: Settings) -> Check:
    uris = [("batch view", settings.batch_view_uri)]
    if settings.registry_backup_uri:
        uris.append(("registry backups", settings.registry_backup_uri))
    buckets = {(what, urlparse(u).netloc) for what, u in uris if urlparse(u).scheme == "s3"}
    if not buckets:
        return Check("s3", Status.OK, "not used (the batch view is a local directory)")
    from stack.s3 import s3_client  # boto3 only when S3 is in use

    client = s3_client(settings)
    for _, bucket in sorted(buckets):
        client.head_bucket(Bucket=bucket)
    names = ", ".join(sorted({f"s3://{b} ({what})" for what, b in buckets}))
    return Check("s3", Status.OK, f"reachable: {names}")


async def validate(settings: Settings, now: Clock = _wall_ms) -> list[Check]:
    """Every check, in the table's order."""
    timeout = max(settings.registry_db_timeout_s * 3, 10.0)
    prefix = settings.redis_key_prefix
    db_timeout = settings.registry_db_timeout_s
    redis = Redis.from_url(
        settings.redis_url,
        **redis_options(settings),
        socket_timeout=db_timeout,
        socket_connect_timeout=db_timeout,
    )
    try:
        registry: tuple[set[str], list[graph.Edge]] | None = None
        try:
            registry = await asyncio.wait_for(asyncio.to_thread(_read_registry, settings), timeout)
            registry_state = registry_check(len(registry[0]))
        except TimeoutError:
            registry_state = unreachable("registry", f"no answer within {timeout:g} s")
        except Exception as exc:  # noqa: BLE001 - reported as the check's verdict
            registry_state = unreachable("registry", _reason(exc))

        redis_state = await _bounded("redis", _redis_ping(redis), timeout, Status.FAILING)
        redis_up = redis_state.status == Status.OK

        if registry is None:
            graph_state = Check("graph", Status.DEGRADED, "not checked: the registry is away")
        else:
            models, edges = registry
            cached = None
            if redis_up:
                try:
                    cached = await _cached_impacts(redis, prefix, sorted(models))
                except Exception:  # noqa: BLE001 - graph_check says the cache was unreadable
                    cached = None
            graph_state = graph_check(models, edges, cached)

        lag_state = await _bounded("lag", _lag(settings), timeout, Status.FAILING)
        s3_state = await _bounded("s3", asyncio.to_thread(_s3, settings), timeout,
                                  Status.DEGRADED)  # fmt: skip
        if redis_up:
            views_state = await _bounded(
                "views", _views(redis, prefix, now, settings), timeout, Status.FAILING
            )
        else:
            views_state = Check("views", Status.FAILING, "unreadable: Redis is away")
        brokers_state = await _bounded("brokers", _brokers(settings), timeout, Status.FAILING)
    finally:
        await redis.aclose()
    return [registry_state, graph_state, lag_state, redis_state, s3_state, views_state,
            brokers_state]  # fmt: skip


async def _redis_ping(redis: Redis) -> Check:
    await redis.ping()
    return Check("redis", Status.OK, "reachable")


async def _views(redis: Redis, prefix: str, now: Clock, settings: Settings) -> Check:
    clocks = await _view_clocks(redis, prefix)
    return views_check(clocks, now(), settings.failover_max_view_age_s)
