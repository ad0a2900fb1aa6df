"""`runway retrain-agent` and `runway orchestrator-standin`."""

from __future__ import annotations

import time
from typing import Any

import click
import faust
from faust.cli import option

from config.settings import Settings
from retrain.messages import synthetic_staleness
from retrain.service import run_agent
from retrain.standin import StandIn, Switches, serve
from streams.producer import make_producer
from streams.signals import until_signalled


async def send_staleness(
    settings: Settings, models: int, state: str, prefix: str, version: str
) -> int:
    """Synthetic staleness events (the contract's fields, event time now), `models` of them."""
    producer = make_producer(settings)
    await producer.start()
    now = int(time.time() * 1000)
    try:
        for i in range(models):
            model = f"{prefix}{i:03d}"
            value = synthetic_staleness(model, version, state, f"synthetic {state} verdict", now)
            await producer.send(settings.topic("staleness"), value, key=model.encode())
        await producer.flush()
    finally:
        await producer.stop()
    return models


def register(app: faust.App, settings: Settings) -> None:
    """Declare the retrain agent and the stand-in orchestrator on the Faust app's CLI."""

    @app.command(name="retrain-agent")
    async def retrain_agent(self: Any) -> None:
        """Retrain stale models through the orchestrator (breaker, retries, retrain-dlq)."""
        await until_signalled(lambda stop: run_agent(settings, stop))

    @app.command(
        option("--host", type=str, default=None, help="Address (RUNWAY_STANDIN_HOST)."),
        option("--port", type=int, default=None, help="Port (RUNWAY_STANDIN_PORT)."),
        option("--fail", type=int, default=0, help="Fail the next N calls."),
        option("--down", is_flag=True, default=False, help="Fail every call."),
        option("--status", type=int, default=503, help="What a failure answers (503, 429...)."),
        option("--retry-after", type=float, default=None, help="Retry-After seconds on failures."),
        option("--hang", is_flag=True, default=False, help="Never answer."),
        option("--latency-ms", type=int, default=0, help="Delay before every answer."),
        option("--poison", multiple=True, help="A model whose every call fails (repeatable)."),
        name="orchestrator-standin",
    )
    async def orchestrator_standin(
        self: Any,
        host: str | None,
        port: int | None,
        fail: int,
        down: bool,
        status: int,
        retry_after: float | None,
        hang: bool,
        latency_ms: int,
        poison: tuple[str, ...],
    ) -> None:
        """A stand-in Maestro orchestrator for tests and the demo (GET /calls, POST /control)."""
        switches = Switches(fail, down, status, retry_after, hang, latency_ms, list(poison))
        standin = StandIn(switches)
        await until_signalled(
            lambda stop: serve(
                standin, host or settings.standin_host, port or settings.standin_port, stop
            )
        )

    @app.command(
        option("--models", type=int, default=30, help="How many models."),
        option("--state", type=click.Choice(["STALE", "WARNING", "FRESH"]), default="STALE"),
        option("--prefix", type=str, default="model-", help="Model ids: <prefix>000, ..."),
        option("--model-version", type=str, default="1", help="Their model_version."),
        name="retrain-send-staleness",
    )
    async def retrain_send_staleness(
        self: Any, models: int, state: str, prefix: str, model_version: str
    ) -> None:
        """Send synthetic staleness events (event time now) to the staleness topic."""
        sent = await send_staleness(settings, models, state, prefix, model_version)
        print(f"sent {sent} {state} events to {settings.topic('staleness')}")
