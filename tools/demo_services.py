"""The services `runway demo` runs beside the join workers, and what it asks of them.

- `demo_settings`: the settings every demo process loads. Only what the user left unset changes:
  the registry on the stack's PostgreSQL (`RUNWAY_REGISTRY_DSN` = `RUNWAY_POSTGRES_URL`), a
  random API token (printed), a 1-hour staleness reference window frozen at once (so, with event
  time running `speedup` times faster than the wall clock, drift can be judged a minute after
  traffic starts) and a 1-hour retrain cooldown (event time), so each demo run gets its retrain.
- `service_processes`: `runway orchestrator-standin`, `registry-agent`, `api` and
  `retrain-agent`, each a `RunwayProcess` with its log under the demo's directory.
- `registration_calls` / `register_models`: the models, this run's version of each and a dependency
  chain, through the API (real HTTP, bearer token), so staleness events carry `impacted`.
- `poll_status`: the panel's inputs (retrain agent /health, stand-in /calls, API /health).
- `first_event_time`: where this run's event time starts (after every earlier run's, on an hour).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from config.settings import Settings, worker_environment
from contracts.ids import escape_id
from stack.processes import ProcessError, RunwayProcess
from tools.demo_table import ServiceStatus
from tools.traffic import ModelPlan

DemoError = ProcessError  # one kind of failure: the message is for the user

HOUR_MS = 3_600_000
CHAIN_LENGTH = 4  # model-000 -> model-001 -> model-002 -> model-003: three levels downstream
HTTP_TIMEOUT_S = 2.0

Call = tuple[str, str, dict[str, Any]]  # method, path, JSON body


DEMO_FUTURE_SKEW_MS = 365 * 24 * HOUR_MS


def demo_settings(settings: Settings, token: str) -> Settings:
    """`settings` with the demo's values for the fields the user did not set (module docstring)."""
    given = settings.model_fields_set
    wanted: dict[str, Any] = {
        "registry_dsn": settings.postgres_url,
        "api_token": token,
        "staleness_reference_window_ms": HOUR_MS,
        "staleness_reference_settle_ms": 0,
        "retrain_cooldown_ms": HOUR_MS,
        # Event time runs 60x ahead of the wall clock (a day every 24 wall minutes), and a new
        # run starts after the last run's clocks: the workers must accept it as not future.
        "max_future_skew_ms": DEMO_FUTURE_SKEW_MS,
    }
    return settings.model_copy(update={k: v for k, v in wanted.items() if k not in given})


def first_event_time(now_ms: int, clocks: Sequence[int]) -> int:
    """The next whole hour after now and after every model's clock (its latest event time).

    After the clocks: a run that starts behind an earlier one (whose fast event time ran ahead
    of the wall clock) would fall outside the windows. On an hour: the reference window starts
    at the 1-hour bucket of a version's first prediction, so it is then exactly one hour long.
    """
    latest = max([now_ms, *(c + 1 for c in clocks)])
    return -(-latest // HOUR_MS) * HOUR_MS


async def model_clocks(redis: Redis, prefix: str, model_ids: Sequence[str]) -> list[int]:
    pipe = redis.pipeline(transaction=False)
    for model_id in model_ids:
        pipe.hget(f"{prefix}:model:{escape_id(model_id)}", "clock")
    clocks = []
    for raw in await pipe.execute():
        with contextlib.suppress(TypeError, ValueError):
            clocks.append(int(float(raw)))
    return clocks


def _addresses(settings: Settings) -> dict[str, tuple[str, int]]:
    return {
        "orchestrator stand-in": (settings.standin_host, settings.standin_port),
        "registry API": (settings.api_host, settings.api_port),
        "retrain agent": (settings.web_host, settings.retrain_web_port),
    }


def busy_ports(addresses: Mapping[str, tuple[str, int]]) -> list[str]:
    """Which of the addresses something already listens on (another demo, a test, a bench)."""
    taken = []
    for name, (host, port) in addresses.items():
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((host, port)) == 0:
                taken.append(f"{name} {host}:{port}")
    return taken


def service_processes(settings: Settings, run_dir: Path) -> list[RunwayProcess]:
    """The four services, not started; they load exactly `settings` (`worker_environment`)."""
    taken = busy_ports(_addresses(settings))
    if taken:
        raise DemoError(
            f"already in use: {', '.join(taken)}; stop what listens there or move the service "
            "(RUNWAY_STANDIN_PORT, RUNWAY_API_PORT, RUNWAY_RETRAIN_WEB_PORT)"
        )
    urls = {name: f"http://{host}:{port}" for name, (host, port) in _addresses(settings).items()}
    # the dashboard shows this run's retrain agent (breaker, queue) unless told another
    health = settings.dashboard_retrain_health_url or f"{urls['retrain agent']}/health"
    env = worker_environment(
        settings.model_copy(
            update={"datadir": run_dir / "services", "dashboard_retrain_health_url": health}
        )
    )
    return [
        RunwayProcess(
            "orchestrator stand-in",
            ["orchestrator-standin"],
            env,
            run_dir / "orchestrator-standin.log",
            f"{urls['orchestrator stand-in']}/health",
        ),
        RunwayProcess(
            "registry agent", ["registry-agent"], env, run_dir / "registry-agent.log", None
        ),
        RunwayProcess(
            "registry API", ["api"], env, run_dir / "api.log", f"{urls['registry API']}/health"
        ),
        RunwayProcess(
            "retrain agent",
            ["retrain-agent"],
            env,
            run_dir / "retrain-agent.log",
            f"{urls['retrain agent']}/health",
        ),
    ]


def registration_calls(plans: Sequence[ModelPlan], deployed_at_ms: int) -> list[Call]:
    """Every model, its version (deployed when this run's event time starts), then the chain."""
    calls: list[Call] = []
    for plan in plans:
        calls.append(("POST", "/models", {"model_id": plan.model_id, "task": plan.task}))
        calls.append(
            (
                "POST",
                f"/models/{plan.model_id}/versions",
                {
                    "version": plan.model_version,
                    "task": plan.task,
                    "trained_at": deployed_at_ms,
                    "deployed_at": deployed_at_ms,
                },
            )
        )
    chain = [plan.model_id for plan in plans[:CHAIN_LENGTH]]
    for upstream, downstream in zip(chain, chain[1:], strict=False):
        calls.append(("POST", "/dependencies", {"upstream": upstream, "downstream": downstream}))
    return calls


async def register_models(settings: Settings, calls: Sequence[Call]) -> None:
    """Send the calls to the API with the bearer token; any answer but 2xx stops the demo."""
    base = f"http://{settings.api_host}:{settings.api_port}"
    headers = {"Authorization": f"Bearer {settings.api_token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10.0) as client:
        for method, path, body in calls:
            try:
                response = await client.request(method, path, json=body)
            except httpx.HTTPError as exc:
                raise DemoError(f"registering through the API: {method} {path}: {exc!r}") from exc
            if not response.is_success:
                raise DemoError(
                    f"registering through the API: {method} {path} answered "
                    f"{response.status_code}: {response.text[:300]}"
                )


async def _json(client: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
    """The JSON body of any answer (the API's /health answers 503 when failing), else None."""
    try:
        response = await client.get(url)
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return body if isinstance(body, dict) else None


async def poll_status(client: httpx.AsyncClient, settings: Settings) -> ServiceStatus:
    addresses = _addresses(settings)

    def url(name: str, path: str) -> str:
        host, port = addresses[name]
        return f"http://{host}:{port}{path}"

    retrain, calls, api = await asyncio.gather(
        _json(client, url("retrain agent", "/health")),
        _json(client, url("orchestrator stand-in", "/calls")),
        _json(client, url("registry API", "/health")),
    )
    return ServiceStatus(retrain, calls, api)
