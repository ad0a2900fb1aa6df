"""The registry API against real databases and Redis, including their outages.

The API runs in-process (httpx's ASGI transport, the app's own lifespan); everything it talks to
is a real server. Outages are real: the PostgreSQL or Redis that goes down is one this test
started for itself (own stack dir, own port), never the shared stack's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import psycopg
from redis import Redis

from config.settings import Settings
from registry.bench import scratch_database
from registry.wiring import build_api
from tests.integration.harness import wait_for
from tests.integration.registry_support import (  # noqa: F401  (fixtures)
    OwnService,
    own_postgres,
    own_redis,
    own_stack_dir,
    registry_dsn,
)

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHAIN = [("raw", "a", "dataset"), ("a", "b", "model"), ("b", "c", "model"), ("c", "d", "model")]


def api_settings(dsn: str, **more: Any) -> Settings:
    return Settings(
        registry_dsn=dsn,
        api_token=TOKEN,
        redis_key_prefix=f"test-{uuid.uuid4().hex[:8]}",
        registry_db_timeout_s=2.0,
        **more,
    )


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = build_api(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def register_chain(client: httpx.AsyncClient) -> None:
    for model in ("a", "b", "c", "d"):
        r = await client.post("/models", json={"model_id": model, "task": "binary"}, headers=AUTH)
        assert r.status_code == 201, r.text
    for up, down, kind in CHAIN:
        r = await client.post(
            "/dependencies", json={"upstream": up, "downstream": down, "kind": kind}, headers=AUTH
        )
        assert r.status_code == 201, r.text


async def test_writes_reads_auth_validation_and_cache(registry_dsn: str) -> None:  # noqa: F811
    settings = api_settings(registry_dsn)
    redis = Redis.from_url(settings.redis_url)
    async with client_for(settings) as client:
        # bad or missing token: 401 and nothing written
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            r = await client.post("/models", json={"model_id": "a"}, headers=headers)
            assert r.status_code == 401
        assert (await client.get("/models")).json()["models"] == []
        # invalid bodies: 422 naming the field
        r = await client.post("/models", json={"model_id": "a", "task": "ranking"}, headers=AUTH)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "task"]
        r = await client.post(
            "/models/a/versions", json={"version": "v1", "task": "binary", "max_age_ms": -1},
            headers=AUTH,
        )  # fmt: skip
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "max_age_ms"]
        await register_chain(client)
        r = await client.post(
            "/models/a/versions",
            json={"version": "v1", "task": "binary", "trained_at": 1000, "deployed_at": 2000,
                  "baseline_metrics": {"auc": 0.9}},
            headers=AUTH,
        )  # fmt: skip
        assert r.status_code == 201 and r.json()["baseline_metrics"] == {"auc": 0.9}
        listed = (await client.get("/models")).json()
        assert [m["model_id"] for m in listed["models"]] == ["a", "b", "c", "d"]
        assert listed["source"] == "database" and listed["warnings"] == []

        impact = (await client.get("/models/a/impact")).json()
        assert impact["impacted"] == ["b", "c", "d"]
        assert [(n["node"], n["depth"]) for n in impact["downstream"]] == [
            ("b", 1), ("c", 2), ("d", 3),
        ]  # fmt: skip
        lineage = (await client.get("/models/d/lineage")).json()
        assert [(n["node"], n["kind"]) for n in lineage["upstream"]] == [
            ("c", "model"), ("b", "model"), ("a", "model"), ("raw", "dataset"),
        ]  # fmt: skip

        # the join worker's key: fresh after the write, without any read of it
        cached = orjson.loads(redis.get(f"{settings.redis_key_prefix}:impact:b"))  # type: ignore[arg-type]
        assert cached["impacted"] == ["c", "d"] and cached["model_id"] == "b"
        assert isinstance(cached["computed_at"], int)

        # model detail: registry part, latest staleness, and the live speed view from Redis
        base = f"{settings.redis_key_prefix}:model:a"
        redis.hset(base, mapping={"model_id": "a", "task": "binary", "clock": "5000"})
        redis.hset(f"{base}:window:1h", mapping={"count": "42", "auc": "0.88"})
        detail = (await client.get("/models/a")).json()
        assert detail["model"]["model_id"] == "a"
        assert [v["version"] for v in detail["versions"]] == ["v1"]
        assert detail["staleness"] is None
        assert detail["live"] == {
            "model": {"model_id": "a", "task": "binary", "clock": "5000"},
            "1h": {"count": "42", "auc": "0.88"},
        }
        assert (await client.get("/models/zzz")).status_code == 404
        assert (await client.get("/models/a/retrains")).json() == []
        assert (await client.get("/openapi.json")).json()["info"]["title"] == "Runway registry"
        metrics = (await client.get("/metrics")).text
        assert (
            'runway_api_requests_total{cls="api",method="POST",route="/models",status="401"} 3.0'
            in metrics
        )
        health = (await client.get("/health")).json()
        assert health == {
            "status": "ok", "checks": {"kafka": "ok", "redis": "ok", "database": "ok"},
        }  # fmt: skip


async def test_bounds_ids_and_numbers_at_the_edges(registry_dsn: str) -> None:  # noqa: F811
    async with client_for(api_settings(registry_dsn)) as client:
        await register_chain(client)
        impact = (await client.get("/models/a/impact")).json()
        assert (impact["impacted"], impact["truncated"]) == (["b", "c", "d"], False)
        cut = (await client.get("/models/a/impact", params={"depth": 1})).json()
        assert (cut["impacted"], [n["node"] for n in cut["downstream"]], cut["truncated"]) == (
            ["b"], ["b"], True,
        )  # fmt: skip
        cut = (await client.get("/models/a/impact", params={"limit": 2})).json()
        assert (cut["impacted"], cut["truncated"]) == (["b", "c"], True)
        up = (await client.get("/models/d/lineage", params={"depth": 2, "limit": 5})).json()
        assert ([n["node"] for n in up["upstream"]], up["truncated"]) == (["c", "b"], True)
        for query in ({"depth": 0}, {"depth": 101}, {"limit": -1}, {"limit": 10_001}):
            assert (await client.get("/models/a/lineage", params=query)).status_code == 422

        # NaN and infinities: 422, nothing stored, the listing stays readable
        for raw in (b"NaN", b"Infinity", b"1e999"):
            r = await client.post(
                "/models/a/versions",
                content=b'{"version": "v9", "task": "binary", "baseline_metrics": {"auc": '
                + raw + b"}}",
                headers={**AUTH, "Content-Type": "application/json"},
            )  # fmt: skip
            assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "auc"
        assert (await client.get("/models/a/versions")).json() == []

        # a path id the grammar refuses: 422, no model made, GET /models still answers
        for bad in ("%01", "x" * 241):
            r = await client.post(
                f"/models/{bad}/versions", json={"version": "v1", "task": "binary"}, headers=AUTH
            )
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "model_id"]
        listed = await client.get("/models")
        assert listed.status_code == 200
        assert [m["model_id"] for m in listed.json()["models"]] == ["a", "b", "c", "d"]

        # ids the grammar takes, `/` and `:` and the longest, round-trip through paths
        for model_id in ("team/fraud:v2", "é" * 120, "m" * 240):
            r = await client.post("/models", json={"model_id": model_id}, headers=AUTH)
            assert r.status_code == 201, r.text
            r = await client.post(
                f"/models/{quote(model_id, safe='')}/versions",
                json={"version": model_id, "task": "binary"},
                headers=AUTH,
            )
            assert r.status_code == 201 and r.json()["model_id"] == model_id
            detail = (await client.get(f"/models/{quote(model_id, safe='')}")).json()
            assert [v["version"] for v in detail["versions"]] == [model_id]


async def test_read_tokens_make_reads_need_a_token(registry_dsn: str) -> None:  # noqa: F811
    settings = api_settings(registry_dsn, api_tokens={"reader-token": "read"})
    async with client_for(settings) as client:
        await register_chain(client)  # RUNWAY_API_TOKEN stays a write token
        assert (await client.get("/models/a/impact")).status_code == 401
        reader = {"Authorization": "Bearer reader-token"}
        impact = await client.get("/models/a/impact", headers=reader)
        assert impact.status_code == 200 and impact.json()["impacted"] == ["b", "c", "d"]
        assert (await client.get("/models", headers=AUTH)).status_code == 200
        r = await client.post("/models", json={"model_id": "e"}, headers=reader)
        assert r.status_code == 401
        assert (await client.get("/health")).status_code == 200


async def test_database_down_serves_cache_with_stale_warning(own_postgres: OwnService) -> None:  # noqa: F811
    port = own_postgres.settings.stack_postgres_port
    settings = api_settings(f"postgresql://runway@127.0.0.1:{port}/runway")
    async with client_for(settings) as client:
        await register_chain(client)
        assert (await client.get("/models/a")).status_code == 200  # caches the detail
        own_postgres.stop()

        impact = (await client.get("/models/a/impact")).json()
        assert (impact["impacted"], impact["source"], impact["stale"]) == (
            ["b", "c", "d"],
            "cache",
            True,
        )
        assert impact["warnings"][0].startswith("stale: database unavailable")
        # a node nobody cached: empty, with the unavailable warning
        unknown = (await client.get("/models/nobody/impact")).json()
        assert (unknown["impacted"], unknown["source"], unknown["unavailable"]) == (
            [],
            "none",
            True,
        )
        assert unknown["warnings"][0].startswith("unavailable: database unavailable")
        # the cached answer is the largest walk: smaller bounds are cut from it
        cut = (await client.get("/models/a/impact", params={"depth": 1})).json()
        assert (cut["impacted"], cut["source"], cut["truncated"]) == (["b"], "cache", True)
        detail = (await client.get("/models/a")).json()
        assert (detail["model"]["model_id"], detail["source"], detail["stale"]) == (
            "a",
            "cache",
            True,
        )
        # writes fail loudly and honestly
        r = await client.post("/models", json={"model_id": "e"}, headers=AUTH)
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json() == {
            "status": "degraded", "checks": {"kafka": "ok", "redis": "ok", "database": "down"},
        }  # fmt: skip
        # the API started while its database is down still serves the cache
    async with client_for(settings) as client:
        impact = (await client.get("/models/b/impact")).json()
        assert (impact["impacted"], impact["source"]) == (["c", "d"], "cache")


async def test_redis_down_reads_from_database(own_redis: OwnService, registry_dsn: str) -> None:  # noqa: F811
    port = own_redis.settings.stack_redis_port
    settings = api_settings(registry_dsn, redis_url=f"redis://127.0.0.1:{port}/0")
    async with client_for(settings) as client:
        await register_chain(client)
        own_redis.stop()
        impact = (await client.get("/models/a/impact")).json()
        assert (impact["impacted"], impact["source"], impact["warnings"]) == (
            ["b", "c", "d"], "database", [],
        )  # fmt: skip
        detail = (await client.get("/models/b")).json()
        assert (detail["model"]["model_id"], detail["source"], detail["live"]) == (
            "b",
            "database",
            None,
        )
        assert detail["warnings"][0].startswith("speed view unavailable (Redis down")
        r = await client.post("/models", json={"model_id": "e"}, headers=AUTH)
        assert r.status_code == 201  # the database is the truth; the cache is best-effort
        health = (await client.get("/health")).json()
        assert health["status"] == "degraded" and health["checks"]["redis"] == "down"


async def test_full_bulkhead_gets_503_with_retry_after(stack: object) -> None:
    with scratch_database(Settings().postgres_url) as dsn:
        settings = api_settings(
            dsn, bulkhead_dashboard_max_concurrent=1, bulkhead_dashboard_max_wait_s=0.3
        )
        async with client_for(settings) as client:
            await register_chain(client)
            # hold the one dashboard slot: a list request blocked behind a real table lock
            with psycopg.connect(dsn) as locker:
                locker.execute("LOCK TABLE models IN ACCESS EXCLUSIVE MODE")
                held = asyncio.create_task(client.get("/models"))
                await wait_for(
                    lambda: asyncio.to_thread(_waiting_on_lock, dsn), 10.0, "a blocked list"
                )
                refused = await client.get("/models")
                other_class = await client.get("/models/a/impact")  # internal: unaffected
                locker.rollback()
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
            assert other_class.status_code == 200
            assert [m["model_id"] for m in (await held).json()["models"]] == ["a", "b", "c", "d"]
            metrics = (await client.get("/metrics")).text
            assert 'runway_api_bulkhead_rejected_total{cls="dashboard"} 1.0' in metrics


def _waiting_on_lock(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        ).fetchone()
    return bool(row and row[0] >= 1)
