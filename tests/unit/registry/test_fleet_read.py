"""The readers of `runway models` / `runway model`: the API one over a mock transport (paths,
token, warnings, errors) and the database one on a database no registry process has used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.fleet_read import ApiError, ApiReader, StoreReader
from registry.records import ModelIn
from registry.store import Store, make_engine

VERDICT = {"model_id": "team/a", "state": "STALE", "score": 0.8, "event_time": 5, "emitted_at": 6}
STALE = "stale: registry database unavailable"


def mock(seen: list[httpx.Request]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.raw_path.decode()
        if path == "/models":
            doc = {"models": [{"model_id": "team/a", "task": "binary"}], "warnings": [STALE]}
            return httpx.Response(200, json=doc)
        if path == "/models/team%2Fa/staleness?limit=1":
            return httpx.Response(200, json=[VERDICT])
        if path == "/models/team%2Fa":
            doc = {"model": {"model_id": "team/a"}, "versions": [], "warnings": [STALE]}
            return httpx.Response(200, json=doc)
        if path == "/models/team%2Fa/staleness?limit=5":
            return httpx.Response(200, json=[VERDICT, VERDICT])
        if path.startswith("/models/team%2Fa/impact?depth=100&limit=10000"):
            doc = {"impacted": ["b"], "downstream": [{"node": "b", "kind": "model", "depth": 1}]}
            return httpx.Response(200, json=doc)
        if path.startswith("/models/team%2Fa/lineage?depth=100&limit=10000"):
            return httpx.Response(200, json={"upstream": []})
        if path == "/models/team%2Fa/retrains":
            return httpx.Response(200, json=[])
        if path == "/models/gone":
            return httpx.Response(404, json={"detail": "no model 'gone'"})
        return httpx.Response(503, json={"detail": "registry database down"})

    return httpx.MockTransport(answer)


def test_the_api_reader_encodes_ids_sends_the_token_and_keeps_warnings() -> None:
    seen: list[httpx.Request] = []
    reader = ApiReader("http://api:8080/", "tok", transport=mock(seen))
    assert reader.source == "API http://api:8080/"
    models, latest = reader.fleet()
    assert models == [{"model_id": "team/a", "task": "binary"}]
    assert latest == {"team/a": VERDICT}
    detail = reader.detail("team/a", 5)
    assert detail is not None
    assert detail.history == [VERDICT, VERDICT] and detail.impacted == ["b"]
    assert detail.downstream == [{"node": "b", "kind": "model", "depth": 1}]
    assert reader.warnings == [STALE]  # said twice, kept once
    assert {r.headers["authorization"] for r in seen} == {"Bearer tok"}
    assert reader.detail("gone", 5) is None
    with pytest.raises(ApiError, match="HTTP 503"):
        reader.detail("other", 5)
    reader.close()


def test_the_api_reader_without_a_token_sends_none() -> None:
    seen: list[httpx.Request] = []
    ApiReader("http://api", None, transport=mock(seen)).fleet()
    assert all("authorization" not in r.headers for r in seen)


def test_a_database_without_tables_has_no_models(tmp_path: Path) -> None:
    reader = StoreReader(Store(make_engine(f"sqlite:///{tmp_path}/empty.sqlite3", 3.0)))
    assert reader.fleet() == ([], {})
    assert reader.detail("a", 20) is None
    assert reader.warnings == []
    reader.close()


def event(model_id: str, event_time: int, emitted_at: int, state: str) -> dict[str, Any]:
    return {
        "schema_version": 1, "model_id": model_id, "model_version": "v1", "state": state,
        "score": 0.5, "basis": ["drift"], "uncertainty": 0.2, "reason": state,
        "event_time": event_time, "emitted_at": emitted_at, "metrics": {}, "impacted": [],
    }  # fmt: skip


def test_the_database_reader_takes_each_models_latest_verdict(tmp_path: Path) -> None:
    """Latest event time first, then the later emission of two at the same event time (a
    re-scored hour); a model without a verdict has None."""
    store = Store(make_engine(f"sqlite:///{tmp_path}/r.sqlite3", 3.0), clock=lambda: 1)
    store.create_schema()
    for model_id in ("a", "b", "c"):
        store.upsert_model(ModelIn(model_id=model_id, task="binary"))
    for e in [
        event("a", 200, 250, "WARNING"),
        event("a", 300, 390, "STALE"),  # the latest: event time 300, emitted last
        event("a", 300, 310, "FRESH"),
        event("a", 100, 900, "FRESH"),  # emitted last of all, but for an older event time
        event("c", 50, 60, "FRESH"),
    ]:
        assert store.record_staleness(e)
    models, latest = StoreReader(store).fleet()
    assert [m["model_id"] for m in models] == ["a", "b", "c"]
    assert {m: (v["state"], v["event_time"], v["emitted_at"]) if v else None
            for m, v in latest.items()} == {
        "a": ("STALE", 300, 390), "b": None, "c": ("FRESH", 50, 60),
    }  # fmt: skip
    only = store.latest_staleness_by_model(["c", "b"])
    assert {m: v.emitted_at for m, v in only.items()} == {"c": 60}
    store.dispose()
