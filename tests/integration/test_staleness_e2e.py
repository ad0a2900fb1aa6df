"""End to end: a drift injected in one model's scores makes the worker emit STALE for that model
only, and registry agents on SQLite and PostgreSQL record it with the downstream models of a
three-level dependency chain (issue 4).

Four binary models serve predictions for two hours of event time and get no labels (ground
truth delayed: the verdict must rest on drift and age). Hour 0 is the reference window (shortened
to one hour through the settings); in hour 1 `drifted` draws its scores from a mirrored
distribution while the others keep theirs. The registry declares the chain
drifted -> first -> second -> third.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from config.settings import Settings
from registry.agent import RegistryAgent
from registry.records import DependencyIn, ModelIn, VersionIn
from registry.wiring import build_registry
from staleness.events import StalenessEvent
from tests.integration.harness import Worker, read_topic, send_records, wait_for
from tests.integration.registry_support import scratch_postgres  # noqa: F401  (fixture)
from tests.integration.test_join import worker_settings
from tools.traffic import Record

HOUR_MS = 3_600_000
START_MS = 1_700_000_000_000
PER_HOUR = 3_000  # predictions per model and hour: PSI noise ~0.006, far below 0.1
MODELS = ("drifted", "first", "second", "third")
CHAIN = [("drifted", "first"), ("first", "second"), ("second", "third")]


def traffic(rng: random.Random) -> list[Record]:
    records = []
    for model in MODELS:
        events = []
        for hour in (0, 1):
            for i in range(PER_HOUR):
                score = rng.betavariate(2, 5)  # mean 0.29
                if model == "drifted" and hour == 1:
                    score = 1 - score  # mean 0.71: the same shape, mirrored
                events.append(
                    {
                        "prediction_id": f"{model}-{hour}-{i}",
                        "model_id": model,
                        "model_version": "v1",
                        "timestamp": START_MS + hour * HOUR_MS + i * HOUR_MS // PER_HOUR,
                        "task": "binary",
                        "score": score,
                    }
                )
        for at in range(0, len(events), 100):
            batch = events[at : at + 100]
            records.append(Record("predictions", model.encode(), orjson.dumps(batch), len(batch)))
    return records


def register(settings: Settings) -> None:
    registry = build_registry(settings)
    registry.store.create_schema()
    for model in MODELS:
        registry.register_model(ModelIn(model_id=model, task="binary"))
        registry.register_version(
            model, VersionIn(version="v1", task="binary", trained_at=START_MS, deployed_at=START_MS)
        )
    for upstream, downstream in CHAIN:
        registry.add_dependency(DependencyIn(upstream=upstream, downstream=downstream))
    registry.store.dispose()


async def test_drift_in_one_model_is_stale_in_both_registries(
    settings: Settings,
    tmp_path: Path,
    scratch_postgres: str,  # noqa: F811
) -> None:
    base = settings.model_copy(
        update={
            "redis_key_prefix": settings.app_id,
            "staleness_windows": "1h",
            "staleness_reference_window_ms": HOUR_MS,
            "staleness_reference_settle_ms": 0,
        }
    )
    registries = {
        "sqlite": base.model_copy(
            update={
                "registry_dsn": f"sqlite:///{tmp_path / 'registry.sqlite3'}",
                "registry_group_id": f"{base.app_id}-registry-sqlite",
            }
        ),
        "postgres": base.model_copy(
            update={
                "registry_dsn": scratch_postgres,
                "registry_group_id": f"{base.app_id}-registry-pg",
            }
        ),
    }
    stop = asyncio.Event()
    runs: list[asyncio.Task[None]] = []
    agents = {name: RegistryAgent(s, build_registry(s).store) for name, s in registries.items()}
    worker = Worker(worker_settings(base, tmp_path, "w"), tmp_path / "worker.log")
    try:
        for s in registries.values():
            register(s)  # both write the same impact lists to the shared Redis cache
        runs += [asyncio.create_task(agent.run(stop)) for agent in agents.values()]
        await send_records(base, traffic(random.Random(4)))
        worker.start()

        def verdicts(name: str) -> dict[str, list[Any]]:
            store = agents[name].store
            return {m: store.staleness_history(m) for m in MODELS}

        async def all_judged_and_drifted_stale() -> dict[str, dict[str, list[Any]]] | None:
            seen = {name: verdicts(name) for name in agents}
            for rows in seen.values():
                if not all(rows.values()) or not any(r.state == "STALE" for r in rows["drifted"]):
                    return None
            return seen

        seen = await wait_for(all_judged_and_drifted_stale, 120, "STALE recorded in both")
    except BaseException:
        print(worker.log_tail(60))
        raise
    finally:
        worker.stop()
        stop.set()
        await asyncio.gather(*runs)
        for agent in agents.values():
            agent.store.dispose()

    sent = [
        StalenessEvent.model_validate_json(value)
        for _, value in await read_topic(base, base.topic("staleness"))
    ]
    assert {e.model_id for e in sent if e.state == "STALE"} == {"drifted"}
    stale = [e for e in sent if e.state == "STALE"]
    assert all(e.impacted == ["first", "second", "third"] for e in stale)
    assert all(e.basis == ["drift", "age"] for e in stale), [e.basis for e in stale]
    assert all("ground truth" in e.reason for e in stale), [e.reason for e in stale]
    redis = Redis.from_url(base.redis_url)
    try:
        shown = {
            m: await redis.hget(f"{base.redis_key_prefix}:model:{m}:staleness", "state")
            for m in MODELS
        }
    finally:
        await redis.aclose()
    assert shown == {"drifted": b"STALE", "first": b"FRESH", "second": b"FRESH", "third": b"FRESH"}
    for name, rows in seen.items():
        recorded_stale = {
            m for m, history in rows.items() if any(r.state == "STALE" for r in history)
        }
        assert recorded_stale == {"drifted"}, name
        assert all(
            r.impacted == ["first", "second", "third"]
            for r in rows["drifted"]
            if r.state == "STALE"
        ), name
