"""The readers of `runway models` / `runway model`: the API one over a mock transport (paths,
token, warnings, errors) and the database one on a database no registry process has used."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from registry.fleet_read import ApiError, ApiReader, StoreReader
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
