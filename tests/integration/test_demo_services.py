"""`runway demo`'s services for real: the stand-in, registry agent, API and retrain agent start as
subprocesses, the demo's registration goes through the API with the token (a wrong one is
refused), the panel reads their answers, and each stops cleanly on SIGTERM."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from config.settings import Settings
from stack.processes import free_port, wait_healthy
from tests.integration.registry_support import scratch_postgres  # noqa: F401  (fixture)
from tools.demo_services import (
    DemoError,
    demo_settings,
    poll_status,
    register_models,
    registration_calls,
    service_processes,
)
from tools.demo_table import service_panel
from tools.traffic import TrafficSpec, plan_models

DEPLOYED = 1_700_002_800_000


async def test_services_start_register_report_and_stop(
    settings: Settings,
    tmp_path: Path,
    scratch_postgres: str,  # noqa: F811
) -> None:
    pg_dsn = scratch_postgres
    base = settings.model_copy(
        update={
            "redis_key_prefix": settings.app_id,
            "registry_dsn": pg_dsn,
            "registry_group_id": f"{settings.app_id}-registry",
            "api_port": free_port(),
            "standin_port": free_port(),
            "retrain_web_port": free_port(),
        }
    )
    ours = demo_settings(base, "demo-secret")
    assert (ours.registry_dsn, ours.api_token) == (pg_dsn, "demo-secret")
    processes = service_processes(ours, tmp_path)
    plans = plan_models(TrafficSpec(models=5, model_version="v3"), random.Random(0))
    calls = registration_calls(plans, DEPLOYED)
    api = f"http://127.0.0.1:{ours.api_port}"
    redis = Redis.from_url(ours.redis_url)
    try:
        for process in processes:
            process.start()
        await wait_healthy(processes, 60)
        await register_models(ours, calls)
        with pytest.raises(DemoError, match="answered 401"):
            await register_models(ours.model_copy(update={"api_token": "wrong"}), calls[:1])
        with pytest.raises(DemoError, match="already in use"):
            service_processes(ours, tmp_path)  # the ports are ours now
        async with httpx.AsyncClient(timeout=5) as client:
            impact = (await client.get(f"{api}/models/model-000/impact")).json()
            versions = (await client.get(f"{api}/models/model-001/versions")).json()
            status = await poll_status(client, ours)
        cached = orjson.loads(await redis.get(f"{ours.redis_key_prefix}:impact:model-000"))
    except BaseException:
        for process in processes:
            print(process.name, process.log_tail(20))
        raise
    finally:
        codes = [process.stop() for process in processes]
        await redis.aclose()
    assert impact["impacted"] == ["model-001", "model-002", "model-003"]
    assert cached["impacted"] == ["model-001", "model-002", "model-003"]  # what the worker reads
    assert [(v["version"], v["task"], v["deployed_at"]) for v in versions] == [
        ("v3", "regression", DEPLOYED)
    ]
    assert service_panel(status) == [
        "retrain agent: breaker closed (opened 0x), queue 0, in flight 0, orchestrator calls 0",
        "orchestrator stand-in: 0 retrain(s) started, 0 call(s), 0 duplicate(s)",
        "registry API /health: ok (database ok, kafka ok, redis ok)",
    ]
    assert codes == ["exit 0"] * 4, codes
