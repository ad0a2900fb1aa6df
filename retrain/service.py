"""Wiring of `runway retrain-agent` (the one place its parts meet) and its small web server:
`/health` (JSON, breaker state included) and `/metrics` (Prometheus)."""

from __future__ import annotations

import asyncio
import random
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config.settings import Settings
from retrain.agent import RetrainAgent, group_id
from retrain.breaker import BreakerConfig, CircuitBreaker, State
from retrain.client import OrchestratorClient
from retrain.dispatch import Dispatcher, RetryPolicy
from retrain.recorder import RetrainRecorder


def breaker_config(settings: Settings) -> BreakerConfig:
    return BreakerConfig(
        failure_threshold=settings.retrain_failure_threshold,
        success_threshold=settings.retrain_success_threshold,
        reset_timeout_s=settings.retrain_reset_timeout_s,
        half_open_requests=settings.retrain_half_open_requests,
        call_timeout_s=settings.retrain_call_timeout_s,
    )


def health(agent: RetrainAgent) -> dict[str, object]:
    state = agent.breaker.state
    return {
        "status": "ok" if state is State.CLOSED else "degraded",
        "ready": agent.ready.is_set(),
        "group": group_id(agent.settings),
        "breaker": state.value,
        "breaker_opened": agent.breaker.opened_count,
        "consecutive_failures": agent.breaker.consecutive_failures,
        "seconds_until_half_open": round(agent.breaker.seconds_until_half_open(), 3),
        "queue_depth": agent.queue.qsize(),
        "models_in_flight": len(agent.busy),  # a model leaves it at its last settle
        "orchestrator_calls": agent.dispatcher.attempts,
    }


def web_app(agent: RetrainAgent) -> web.Application:
    async def get_health(request: web.Request) -> web.Response:
        return web.json_response(health(agent))

    async def get_metrics(request: web.Request) -> web.Response:
        body = generate_latest(agent.telemetry.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/health", get_health)
    app.router.add_get("/metrics", get_metrics)
    return app


def registry_recorder(settings: Settings) -> RetrainRecorder:
    from registry.store import Store  # the registry package owns the database

    store = Store.from_settings(settings)
    store.create_schema()
    return store


async def run_agent(settings: Settings, stop: asyncio.Event) -> None:
    breaker = CircuitBreaker(breaker_config(settings), time.monotonic)
    client = OrchestratorClient(
        settings.retrain_orchestrator_url,
        lambda model_id: settings.retrain_workflows.get(model_id, settings.retrain_workflow_id),
        settings.retrain_call_timeout_s,
    )
    policy = RetryPolicy(
        settings.retrain_max_attempts,
        settings.retrain_backoff_base_s,
        settings.retrain_backoff_max_s,
    )
    dispatcher = Dispatcher(breaker, client, policy, random.Random().uniform)
    recorder = await asyncio.to_thread(registry_recorder, settings)
    agent = RetrainAgent(settings, dispatcher, recorder, lambda: int(time.time() * 1000))
    runner = web.AppRunner(web_app(agent), handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, settings.web_host, settings.retrain_web_port).start()
    await client.start()
    try:
        await agent.run(stop)
    finally:
        await client.close()
        await runner.cleanup()
