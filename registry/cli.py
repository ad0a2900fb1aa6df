"""`runway api`, `runway registry-agent`, `runway registry-bench`, `runway models`, `runway model`.

`models` and `model` take the names of Faust's own commands (which list Faust's record classes,
nothing an operator of ML models looks for); registered after Faust's, they replace them.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import click
import faust
import httpx
import uvicorn
from faust.cli import AppCommand, argument, option
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from config.settings import Settings
from registry.agent import RegistryAgent, serve_metrics
from registry.bench import run_bench
from registry.fleet import STATES, detail_group, detail_json, fleet_json, fleet_rows, fleet_table
from registry.fleet_read import ApiError, FleetReader, reader_for
from registry.store import Store
from registry.tokens import TokenError
from registry.wiring import build_api
from streams.signals import until_signalled

T = TypeVar("T")

_API_OPTION = option(
    "--api",
    "api_url",
    default=None,
    help="Read through this `runway api` base URL (default RUNWAY_REGISTRY_API_URL; unset = the "
    "registry database, RUNWAY_REGISTRY_DSN).",
)
_JSON_OPTION = option("--json", "as_json", is_flag=True, default=False, help="Print JSON.")


def _dumps(doc: object) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False)


async def _read(
    settings: Settings, api_url: str | None, work: Callable[[FleetReader], T]
) -> tuple[str, T]:
    """One read in a thread; an unreachable source is one line on stderr and exit code 1."""
    reader = reader_for(settings, api_url)
    try:
        found = await asyncio.to_thread(work, reader)
        for warning in reader.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return reader.source, found
    except (SQLAlchemyError, httpx.HTTPError, ApiError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"error: cannot read the registry ({reader.source}): {first}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        reader.close()


def _now_ms() -> int:
    return int(time.time() * 1000)


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

    @app.command(
        _API_OPTION,
        _JSON_OPTION,
        option(
            "--state",
            "states",
            multiple=True,
            type=click.Choice(STATES),
            help="Only models in this state (repeatable).",
        ),
    )
    async def models(
        self: AppCommand, api_url: str | None, as_json: bool, states: tuple[str, ...]
    ) -> None:
        """The ML models in the registry: state, score, basis and time of their last verdict."""
        source, (registered, latest) = await _read(settings, api_url, lambda r: r.fleet())
        rows = fleet_rows(registered, latest, states)
        if as_json or self.json:
            print(_dumps(fleet_json(rows, source)))
        else:
            Console().print(fleet_table(rows, _now_ms(), source))

    @app.command(
        argument("model_id"),
        _API_OPTION,
        _JSON_OPTION,
        option("--limit", type=click.IntRange(1, 1000), default=20, help="Verdicts to list."),
    )
    async def model(
        self: AppCommand, model_id: str, api_url: str | None, as_json: bool, limit: int
    ) -> None:
        """One ML model: its verdicts (newest first), versions, impacted models, retrains."""
        source, detail = await _read(settings, api_url, lambda r: r.detail(model_id, limit))
        if detail is None:
            print(f"error: no model {model_id!r} in the registry ({source})", file=sys.stderr)
            raise SystemExit(1)
        if as_json or self.json:
            print(_dumps(detail_json(detail, source)))
        else:
            Console().print(detail_group(detail, _now_ms()))
