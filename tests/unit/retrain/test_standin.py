"""The stand-in orchestrator over real HTTP (aiohttp's test server, in process)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from retrain.client import start_body, start_path
from retrain.messages import RetrainRequest
from retrain.standin import StandIn, Switches

REQUEST = RetrainRequest(
    request_id="r-1", model_id="m", model_version="1", episode=5, score=0.9, reason="stale"
)


async def test_idempotent_by_request_id_and_every_call_recorded() -> None:
    standin = StandIn(Switches(fail=2, status=429, retry_after=3))
    async with TestClient(TestServer(standin.app())) as client:
        statuses = []
        for _ in range(4):
            response = await client.post(start_path("wf"), json=start_body(REQUEST))
            statuses.append((response.status, response.headers.get("Retry-After")))
            body = await response.json()
        assert statuses == [(429, "3"), (429, "3"), (200, None), (200, None)]
        assert body["status"] == "DUPLICATED" and body["workflow_instance_id"] == 1
        listing = await (await client.get("/calls", params={"request_id": "r-1"})).json()
        assert [c["outcome"] for c in listing["calls"]] == ["429", "429", "started", "duplicate"]
        assert (listing["started"], listing["duplicates"]) == (1, 1)
        assert listing["calls"][0]["run_params"]["episode"] == {"value": "5", "type": "STRING"}


async def test_control_switches_down_and_back() -> None:
    standin = StandIn()
    async with TestClient(TestServer(standin.app())) as client:
        await client.post("/control", json={"down": True, "status": 503})
        assert (await client.post(start_path("wf"), json=start_body(REQUEST))).status == 503
        await client.post("/control", json={"down": False})
        assert (await client.post(start_path("wf"), json=start_body(REQUEST))).status == 200
        bad = await client.post("/control", json={"nope": 1})
        assert bad.status == 400
