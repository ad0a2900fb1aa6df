"""A stand-in orchestrator (`runway orchestrator-standin`): Maestro's start call, every call
recorded, idempotent by `request_id`, and switches to misbehave.

Switches (CLI flags at start, `POST /control` with a JSON object of the same names later):
`fail` (fail the next N calls), `down` (fail every call), `status` (what a failure answers:
503, 429, or any code, e.g. 422), `retry_after` (seconds, sent with 429/503), `hang` (never
answer), `latency_ms` (delay before every answer), `poison` (model ids whose every call fails
with `status`, while the others' succeed: a request the orchestrator cannot take).
`GET /calls` lists every call (optionally `?request_id=`), with counts of runs started and of
duplicate calls.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

START_ROUTE = "/api/v3/workflows/{workflow_id}/versions/latest/actions/start"


@dataclass
class Switches:
    fail: int = 0
    down: bool = False
    status: int = 503
    retry_after: float | None = None
    hang: bool = False
    latency_ms: int = 0
    poison: list[str] = field(default_factory=list)

    def update(self, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(f"unknown switch {name!r}")
            setattr(self, name, value)


def model_of(run_params: object) -> str | None:
    """The `model_id` run parameter of a start call's body, if it has one."""
    if isinstance(run_params, dict) and isinstance(run_params.get("model_id"), dict):
        value = run_params["model_id"].get("value")
        return value if isinstance(value, str) else None
    return None


@dataclass
class StandIn:
    switches: Switches = field(default_factory=Switches)
    clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)
    calls: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # request_id -> run
    unhang: asyncio.Event = field(default_factory=asyncio.Event)  # releases hung calls

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(START_ROUTE, self.start)
        app.router.add_get("/calls", self.list_calls)
        app.router.add_get("/control", self.get_control)
        app.router.add_post("/control", self.set_control)
        app.router.add_get("/health", self.health)
        return app

    async def start(self, request: web.Request) -> web.StreamResponse:
        workflow_id = request.match_info["workflow_id"]
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = None
        request_id = body.get("request_id") if isinstance(body, dict) else None
        call: dict[str, Any] = {
            "seq": len(self.calls) + 1,
            "at_ms": self.clock_ms(),
            "workflow_id": workflow_id,
            "request_id": request_id,
            "run_params": body.get("run_params") if isinstance(body, dict) else None,
        }
        self.calls.append(call)
        s = self.switches
        if s.latency_ms:
            await asyncio.sleep(s.latency_ms / 1000)
        if s.hang:
            call["outcome"] = "hung"
            await self.unhang.wait()  # `hang` switched off, or shutdown
        poisoned = model_of(call["run_params"]) in s.poison
        if s.down or s.fail > 0 or poisoned:
            if not s.down and not poisoned:
                s.fail -= 1
            call["outcome"] = str(s.status)
            headers = {"Retry-After": f"{s.retry_after:g}"} if s.retry_after is not None else {}
            return web.json_response(
                {"error": f"stand-in failing with {s.status}"}, status=s.status, headers=headers
            )
        if not isinstance(request_id, str) or not request_id:
            call["outcome"] = "400"
            return web.json_response({"error": "request_id is required"}, status=400)
        run = self.runs.get(request_id)
        if run is not None:
            call["outcome"] = "duplicate"
            return web.json_response({**run, "status": "DUPLICATED"})
        run = {
            "workflow_id": workflow_id,
            "workflow_version_id": 1,
            "workflow_instance_id": len(self.runs) + 1,
            "workflow_run_id": 1,
            "request_id": request_id,
        }
        self.runs[request_id] = run
        call["outcome"] = "started"
        return web.json_response({**run, "status": "CREATED"})

    async def list_calls(self, request: web.Request) -> web.Response:
        wanted = request.query.get("request_id")
        calls = [c for c in self.calls if wanted is None or c["request_id"] == wanted]
        return web.json_response(
            {
                "calls": calls,
                "started": sum(1 for c in calls if c.get("outcome") == "started"),
                "duplicates": sum(1 for c in calls if c.get("outcome") == "duplicate"),
            }
        )

    async def get_control(self, request: web.Request) -> web.Response:
        return web.json_response(asdict(self.switches))

    async def set_control(self, request: web.Request) -> web.Response:
        try:
            self.switches.update(await request.json())
        except (ValueError, AttributeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if self.switches.hang:
            self.unhang.clear()
        else:
            self.unhang.set()
        return web.json_response(asdict(self.switches))

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "calls": len(self.calls), "runs": len(self.runs)})


async def serve(standin: StandIn, host: str, port: int, stop: asyncio.Event) -> None:
    runner = web.AppRunner(standin.app(), handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    print(f"orchestrator stand-in on http://{host}:{port} {asdict(standin.switches)}", flush=True)
    try:
        await stop.wait()
    finally:
        standin.unhang.set()
        await runner.cleanup()
