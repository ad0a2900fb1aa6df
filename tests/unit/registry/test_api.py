"""The API's edges in-process, over a fake registry: ids in paths, bounds, 405, tokens, the
OpenAPI document. (The registry itself, on real databases: tests/integration.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from config.settings import Settings
from registry.api import create_api, routing_path, unescape_segment
from registry.degrade import Answer
from registry.tokens import Tokens

WRITE = {"Authorization": "Bearer w-token"}
READ = {"Authorization": "Bearer r-token"}


class FakeStore:
    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls

    def versions(self, model_id: str) -> list[Any]:
        self.calls.append(("versions", model_id))
        return []

    def staleness_history(self, model_id: str, limit: int) -> list[Any]:
        self.calls.append(("staleness", model_id, limit))
        return []

    def retrain_requests(self, model_id: str) -> list[Any]:
        return []


class FakeRegistry:
    """Records what the routes asked for; answers like an empty registry."""

    degraded_reads = 0

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.store = FakeStore(self.calls)

    def impact(self, model_id: str, depth: int, limit: int) -> Answer[dict[str, Any]]:
        self.calls.append(("impact", model_id, depth, limit))
        doc = {"model_id": model_id, "impacted": [], "downstream": [], "truncated": False}
        return Answer(doc, "database")

    def lineage(self, model_id: str, depth: int, limit: int) -> Answer[dict[str, Any]]:
        self.calls.append(("lineage", model_id, depth, limit))
        return Answer({"model_id": model_id, "upstream": [], "truncated": False}, "database")

    def models(self) -> Answer[dict[str, Any]]:
        return Answer({"models": []}, "database")

    def model(self, model_id: str) -> Answer[None]:
        self.calls.append(("model", model_id))
        return Answer(None, "database")

    def live(self, model_id: str) -> tuple[None, list[str]]:
        return None, []

    def register_model(self, body: Any) -> dict[str, Any]:
        self.calls.append(("register_model", body.model_id))
        return {**body.model_dump(), "created_at": 1, "updated_at": 1}

    def register_version(self, model_id: str, body: Any) -> dict[str, Any]:
        self.calls.append(("register_version", model_id, body.version))
        return {**body.model_dump(), "model_id": model_id, "created_at": 1}

    def add_dependency(self, body: Any) -> None:
        self.calls.append(("add_dependency", body.upstream, body.downstream))

    def database_ok(self) -> bool:
        return True

    def redis_ok(self) -> bool:
        return True


async def kafka_ok() -> bool:
    return True


@asynccontextmanager
async def client(tokens: Tokens) -> AsyncIterator[tuple[httpx.AsyncClient, FakeRegistry]]:
    fake = FakeRegistry()
    app = create_api(Settings(), fake, kafka_ok, tokens)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c, fake


WRITE_ONLY = Tokens({"w-token": "write"})
WITH_READERS = Tokens({"w-token": "write", "r-token": "read"})


def test_routing_path_keeps_slash_and_percent_inside_a_segment() -> None:
    assert routing_path(b"/models/team%2Ffraud/impact?depth=1") == "/models/team%2Ffraud/impact"
    assert routing_path(b"/models/a%25b/versions") == "/models/a%25b/versions"
    assert routing_path(b"/models/%C3%A9t%C3%A9") == "/models/été"
    for model_id in ["team/fraud", "a%b", "%2F", "%252F/%", "é t:é"]:
        path = routing_path(f"/models/{quote(model_id, safe='')}".encode())
        assert unescape_segment(path.split("/")[2]) == model_id


async def test_path_ids_pass_the_body_grammar() -> None:
    async with client(WRITE_ONLY) as (c, fake):
        for bad in ["a%00b", "%01", "x" * 241, "%F0%9F%98%80" * 61, "__HIVE_DEFAULT_PARTITION__"]:
            for path in (f"/models/{bad}", f"/models/{bad}/impact", f"/models/{bad}/versions"):
                r = await c.get(path)
                assert r.status_code == 422, (path, r.text)
                assert r.json()["detail"][0]["loc"] == ["path", "model_id"]
            r = await c.post(f"/models/{bad}/versions", json={"version": "v", "task": "binary"},
                             headers=WRITE)  # fmt: skip
            assert r.status_code == 422
        assert fake.calls == []  # nothing reached the registry
        assert (await c.get("/models/team%2Ffraud/impact")).status_code == 200
        assert (await c.get("/models/a%25b/lineage")).status_code == 200
        r = await c.post("/models/team%2Ffraud/versions", json={"version": "v1", "task": "binary"},
                         headers=WRITE)  # fmt: skip
        assert r.status_code == 201 and r.json()["model_id"] == "team/fraud"
        assert fake.calls == [
            ("impact", "team/fraud", 10, 1000),
            ("lineage", "a%b", 10, 1000),
            ("register_version", "team/fraud", "v1"),
        ]


@pytest.mark.parametrize("query", ["depth=0", "depth=-1", "depth=101", "limit=0", "limit=-5",
                                   "limit=10001", "depth=2.5", "limit=many"])  # fmt: skip
async def test_depth_and_limit_out_of_bounds_get_422(query: str) -> None:
    async with client(WRITE_ONLY) as (c, fake):
        for route in ("impact", "lineage"):
            r = await c.get(f"/models/a/{route}?{query}")
            assert r.status_code == 422, (route, query)
            assert r.json()["detail"][0]["loc"][0] == "query"
        assert fake.calls == []


async def test_bounds_within_range_reach_the_registry() -> None:
    async with client(WRITE_ONLY) as (c, fake):
        await c.get("/models/a/impact?depth=1&limit=10000")
        await c.get("/models/a/lineage?depth=100&limit=1")
        for query in ("limit=0", "limit=1001"):
            assert (await c.get(f"/models/a/staleness?{query}")).status_code == 422
        await c.get("/models/a/staleness?limit=1000")
    assert fake.calls == [
        ("impact", "a", 1, 10000), ("lineage", "a", 100, 1), ("staleness", "a", 1000),
    ]  # fmt: skip


async def test_non_finite_metric_gets_422() -> None:
    async with client(WRITE_ONLY) as (c, fake):
        for raw in (b"NaN", b"Infinity", b"-Infinity", b"1e999"):
            body = b'{"version": "v1", "task": "binary", "baseline_metrics": {"auc": ' + raw + b"}}"
            r = await c.post("/models/a/versions", content=body,
                             headers={**WRITE, "Content-Type": "application/json"})  # fmt: skip
            assert r.status_code == 422, raw
            error = r.json()["detail"][0]
            assert error["loc"] == ["body", "baseline_metrics", "auc"]
            assert error["input"] in ("nan", "inf", "-inf")
        assert fake.calls == []


async def test_405_allows_every_method_of_the_path() -> None:
    async with client(WRITE_ONLY) as (c, _):
        for method, path, allow in [
            ("PUT", "/models", "GET, POST"),
            ("OPTIONS", "/models", "GET, POST"),
            ("DELETE", "/models/a", "GET"),
            ("PATCH", "/models/a/versions", "GET, POST"),
            ("POST", "/health", "GET"),
        ]:
            r = await c.request(method, path)
            assert (r.status_code, r.headers.get("allow")) == (405, allow), (method, path)


async def test_writes_need_a_write_token_and_reads_are_open_without_read_tokens() -> None:
    async with client(WRITE_ONLY) as (c, fake):
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic w-token"}):
            r = await c.post("/models", json={"model_id": "a"}, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert fake.calls == []
        assert (await c.post("/models", json={"model_id": "a"}, headers=WRITE)).status_code == 201
        for path in ("/models", "/models/a/impact", "/models/a/versions", "/health", "/metrics"):
            assert (await c.get(path)).status_code == 200, path


async def test_with_read_tokens_reads_need_one_too() -> None:
    async with client(WITH_READERS) as (c, _):
        for path in ("/models", "/models/a/impact", "/models/a/lineage", "/models/a/versions",
                     "/models/a/staleness", "/models/a/retrains"):  # fmt: skip
            assert (await c.get(path)).status_code == 401, path
            assert (await c.get(path, headers=READ)).status_code == 200, path
            assert (await c.get(path, headers=WRITE)).status_code == 200, path
        assert (await c.get("/models/a", headers=READ)).status_code == 404
        # a read token does not write; /health and /metrics stay open for probes and scrapers
        r = await c.post("/models", json={"model_id": "a"}, headers=READ)
        assert r.status_code == 401
        assert (await c.get("/health")).status_code == 200
        assert (await c.get("/metrics")).status_code == 200


async def test_the_document_names_every_answer() -> None:
    for tokens, read_auth in ((WRITE_ONLY, False), (WITH_READERS, True)):
        async with client(tokens) as (c, _):
            doc = (await c.get("/openapi.json")).json()
        ops = {(m.upper(), p): op for p, item in doc["paths"].items() for m, op in item.items()}
        assert set(ops) == {
            ("POST", "/models"), ("GET", "/models"), ("GET", "/models/{model_id}"),
            ("POST", "/models/{model_id}/versions"), ("GET", "/models/{model_id}/versions"),
            ("GET", "/models/{model_id}/staleness"), ("GET", "/models/{model_id}/retrains"),
            ("GET", "/models/{model_id}/impact"), ("GET", "/models/{model_id}/lineage"),
            ("POST", "/dependencies"), ("GET", "/health"), ("GET", "/metrics"),
        }  # fmt: skip
        for (method, path), op in ops.items():
            codes = set(op["responses"])
            assert "503" in codes, (method, path)
            if method == "POST":
                assert {"201", "400", "401", "422"} <= codes and "security" in op
            elif path not in ("/health", "/metrics"):
                assert "200" in codes and ("422" in codes) == ("{model_id}" in path)
                assert ("401" in codes) == read_auth and ("security" in op) == read_auth
        assert "404" in ops[("GET", "/models/{model_id}")]["responses"]
        metrics = ops[("GET", "/metrics")]["responses"]["200"]["content"]
        assert list(metrics) == ["text/plain"]
        impact = doc["components"]["schemas"]["Impact"]["properties"]
        assert "truncated" in impact
        depth = next(p for p in ops[("GET", "/models/{model_id}/impact")]["parameters"]
                     if p["name"] == "depth")  # fmt: skip
        assert (depth["schema"]["minimum"], depth["schema"]["maximum"]) == (1, 100)
        assert depth["schema"]["default"] == 10
