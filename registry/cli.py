"""`runway api`, `runway registry-agent` and `runway registry-bench`."""

from __future__ import annotations

import asyncio

import faust
import uvicorn
from faust.cli import option

from config.settings import Settings
from registry.agent import RegistryAgent, serve_metrics
from registry.bench import run_bench
from registry.store import Store
from registry.tokens import TokenError
from registry.wiring import build_api
from streams.signals import until_signalled


def register(app: faust.App, settings: Settings) -> None:
    @app.command(
        option("--host", default=None, help="Listen address (default RUNWAY_API_HOST)."),
        option("--port", type=int, default=None, help="Port (default RUNWAY_API_PORT)."),
    )
    async def api(self: object, host: str | None, port: int | None) -> None:
        """Serve the registry HTTP API (OpenAPI at /openapi.json)."""
        try:
            served = build_api(settings)
        except TokenError as exc:
            raise SystemExit(f"runway api: {exc}") from None
        config = uvicorn.Config(
            served,
            host=host or settings.api_host,
            port=port or settings.api_port,
            log_level="info",
        )
        await uvicorn.Server(config).serve()

    @app.command()
    async def registry_agent(self: object) -> None:
        """Record staleness events in the registry database (own consumer group)."""
        agent = RegistryAgent(settings, Store.from_settings(settings))
        server = serve_metrics(agent, settings.web_host, settings.registry_agent_metrics_port)
        try:
            await until_signalled(agent.run)
        finally:
            if server is not None:
                server.shutdown()

    @app.command(
        option("--edges", type=int, default=20_000, help="Dependency edges (seed year 3: 20,000)."),
        option("--queries", type=int, default=200, help="Impact and lineage queries each."),
        option(
            "--dsn",
            default=None,
            help="PostgreSQL server to bench on (in a scratch database); default: SQLite.",
        ),
    )
    async def registry_bench(self: object, edges: int, queries: int, dsn: str | None) -> None:
        """Time impact and lineage queries over a generated dependency graph."""
        print(await asyncio.to_thread(run_bench, edges, queries, dsn))
