"""`runway models` and `runway model ID` against a seeded SQLite registry, from the database and
through a real `runway api` (uvicorn in a thread, real HTTP, the stack's Redis for its cache).

The seed: models a (binary), b (binary), c (regression), d (no task); a chain raw -> a -> b -> c
(raw a dataset); verdicts a FRESH then STALE, b WARNING, c FRESH, none for d; one retrain of a.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from config.settings import Settings
from registry.fleet_read import ApiReader, StoreReader
from registry.records import DependencyIn, ModelIn, VersionIn
from registry.store import Store, make_engine
from registry.wiring import build_api
from stack.processes import free_port
from tests.integration.harness import ROOT, RUNWAY, wait_for

pytestmark = pytest.mark.integration

T0 = 1_764_489_600_000  # 2025-11-30 08:00:00 UTC
MIN = 60_000
TOKEN = "operator-token"


def event(model_id: str, state: str, score: float, at: int, version: str = "v1") -> dict[str, Any]:
    return {
        "schema_version": 1,
        "model_id": model_id,
        "model_version": version,
        "state": state,
        "score": score,
        "basis": ["drift", "age"],
        "uncertainty": 0.25,
        "reason": f"{state} at {at}.",
        "event_time": at,
        "emitted_at": at + 1_000,
        "metrics": {"psi": score},
        "impacted": [],
    }


def seed(dsn: str) -> None:
    store = Store(make_engine(dsn, 3.0))
    store.create_schema()
    for model_id, task in (("a", "binary"), ("b", "binary"), ("c", "regression"), ("d", None)):
        store.upsert_model(ModelIn(model_id=model_id, task=task))
    store.upsert_version(
        "a",
        VersionIn(version="v1", task="binary", trained_at=T0, baseline_metrics={"roc_auc": 0.9}),
    )
    for up, down, kind in (("raw", "a", "dataset"), ("a", "b", "model"), ("b", "c", "model")):
        store.add_dependency(DependencyIn(upstream=up, downstream=down, kind=kind))
    for e in (
        event("a", "FRESH", 0.1, T0),
        event("a", "STALE", 0.9, T0 + 10 * MIN),
        event("b", "WARNING", 0.5, T0 + 5 * MIN),
        event("c", "FRESH", 0.05, T0 + 7 * MIN),
    ):
        assert store.record_staleness(e)
    for status, at in (("queued", T0 + 11 * MIN), ("started", T0 + 12 * MIN)):
        store.record_retrain("req-a-1", "a", "v1", T0 + 10 * MIN, status, None, at)
    store.dispose()


@pytest.fixture
def registry_file(tmp_path: Path) -> str:
    dsn = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    seed(dsn)
    return dsn


@pytest.fixture
def api_url(stack: object, registry_file: str) -> Iterator[str]:
    settings = Settings(
        registry_dsn=registry_file, api_token=TOKEN, redis_key_prefix=f"test-{uuid.uuid4().hex[:8]}"
    )
    port = free_port()
    config = uvicorn.Config(
        build_api(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        asyncio.run(wait_for(lambda: server.started, 30, "the API to listen"))
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


async def runway(dsn: str, *args: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "RUNWAY_REGISTRY_DSN": dsn, "RUNWAY_API_TOKEN": TOKEN}
    proc = await asyncio.create_subprocess_exec(
        RUNWAY, *args, env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-2000:]
    return out.decode()


def row(model_id: str, task: str | None, state: str | None, score: float | None, at: int | None):
    verdict = state is not None
    return {
        "model_id": model_id,
        "task": task,
        "state": state,
        "score": score,
        "basis": ["drift", "age"] if verdict else [],
        "uncertainty": 0.25 if verdict else None,
        "model_version": "v1" if verdict else None,
        "event_time": at,
        "emitted_at": None if at is None else at + 1_000,
        "reason": f"{state} at {at}." if verdict else None,
    }


async def test_models_and_model_from_the_database_and_through_the_api(
    registry_file: str, api_url: str
) -> None:
    # the two readers agree exactly: the API serves what the database holds
    store_reader = StoreReader(Store(make_engine(registry_file, 3.0)))
    api_reader = ApiReader(api_url, TOKEN)
    try:
        from_db = await asyncio.to_thread(store_reader.fleet)
        assert await asyncio.to_thread(api_reader.fleet) == from_db
        assert len(from_db[0]) == 4 and from_db[1]["d"] is None
        detail = await asyncio.to_thread(store_reader.detail, "a", 20)
        assert await asyncio.to_thread(api_reader.detail, "a", 20) == detail
        assert await asyncio.to_thread(api_reader.detail, "nope", 20) is None
        assert api_reader.warnings == []  # its database and Redis are up
    finally:
        store_reader.close()
        api_reader.close()
    assert detail is not None
    assert [(e["state"], e["event_time"]) for e in detail.history] == [
        ("STALE", T0 + 10 * MIN),
        ("FRESH", T0),
    ]
    assert detail.impacted == ["b", "c"]
    assert detail.upstream == [{"node": "raw", "kind": "dataset", "depth": 1}]
    assert [(r["request_id"], r["status"]) for r in detail.retrains] == [("req-a-1", "started")]

    # the commands themselves, one from the database and one through the API, side by side
    listed, shown = await asyncio.gather(
        runway(registry_file, "models", "--json"),
        runway("sqlite:////nonexistent/unused.sqlite3", "model", "a", "--api", api_url),
    )
    assert json.loads(listed) == {
        "source": "database",
        "counts": {"STALE": 1, "WARNING": 1, "FRESH": 1, "none": 1},
        "models": [
            row("a", "binary", "STALE", 0.9, T0 + 10 * MIN),
            row("b", "binary", "WARNING", 0.5, T0 + 5 * MIN),
            row("c", "regression", "FRESH", 0.05, T0 + 7 * MIN),
            row("d", None, None, None, None),
        ],
    }
    lines = [line.rstrip() for line in shown.splitlines()]
    assert lines[:3] == ["model            a", "task             binary", "state            STALE"]
    assert "last verdict     2025-11-30 08:10:01Z (" in "\n".join(lines)
    assert "impacted models  b, c" in lines
    assert "downstream       b (model, depth 1), c (model, depth 2)" in lines
    start = lines.index("verdicts, newest first (latest 2; times UTC)")
    assert lines[start + 1 : start + 5] == [
        "11-30 08:10:01  event time 11-30 08:10:00  STALE  0.900  drift,age",
        f"    STALE at {T0 + 10 * MIN}.",
        "11-30 08:00:01  event time 11-30 08:00:00  FRESH  0.100  drift,age",
        f"    FRESH at {T0}.",
    ]
