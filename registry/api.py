"""The registry's HTTP API (`runway api`): FastAPI, OpenAPI at /openapi.json.

Request classes (bulkheads, seed limits, settings `RUNWAY_BULKHEAD_*`):

- dashboard: GET /models, GET /models/{id}, GET /models/{id}/staleness, GET /models/{id}/retrains
  (what people's screens poll);
- api: POST /models, POST /models/{id}/versions, GET /models/{id}/versions, POST /dependencies
  (programmatic clients: CI, training pipelines);
- internal: GET /models/{id}/impact, GET /models/{id}/lineage, /health, /metrics (Runway's own
  services and the load balancer: small, hot, must not queue behind dashboards).

Writes need `Authorization: Bearer <RUNWAY_API_TOKEN>` (401 otherwise, checked before the body,
so nothing changes); invalid bodies get FastAPI's 422 naming the field (`detail[].loc`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from sqlalchemy.exc import SQLAlchemyError

from config.settings import Settings
from registry.bulkhead import Bulkhead, BulkheadFull
from registry.degrade import Answer, health
from registry.records import DependencyIn, ModelIn, VersionIn
from registry.service import Registry

log = logging.getLogger(__name__)

KafkaCheck = Callable[[], Awaitable[bool]]
DB_RETRY_AFTER_S = 5
# module level: FastAPI resolves the (string) annotation in this module's globals
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]


def bulkheads_from(settings: Settings) -> dict[str, Bulkhead]:
    return {
        name: Bulkhead(
            name,
            getattr(settings, f"bulkhead_{name}_max_concurrent"),
            getattr(settings, f"bulkhead_{name}_max_wait_s"),
        )
        for name in ("dashboard", "api", "internal")
    }


def _reader(head: Bulkhead) -> Callable[[], float]:
    return lambda: head.in_flight


def _envelope(answer: Answer[Any]) -> dict[str, Any]:
    return {
        "source": answer.source,
        "stale": answer.stale,
        "unavailable": answer.unavailable,
        "cached_at": answer.cached_at,
        "warnings": answer.warnings,
    }


def create_api(
    settings: Settings,
    registry: Registry,
    kafka_ok: KafkaCheck,
    bulkheads: dict[str, Bulkhead] | None = None,
) -> FastAPI:
    heads = bulkheads or bulkheads_from(settings)
    metrics = CollectorRegistry()
    requests = Counter(
        "runway_api_requests", "API requests.", ["cls", "method", "route", "status"],
        registry=metrics,
    )  # fmt: skip
    rejected = Counter(
        "runway_api_bulkhead_rejected", "Requests refused for want of a slot.", ["cls"],
        registry=metrics,
    )  # fmt: skip
    in_flight = Gauge("runway_api_in_flight", "Requests holding a slot.", ["cls"],
                      registry=metrics)  # fmt: skip
    for name, head in heads.items():
        in_flight.labels(name).set_function(_reader(head))
    degraded = Gauge("runway_api_degraded_reads", "Reads the database could not answer.",
                     registry=metrics)  # fmt: skip
    degraded.set_function(lambda: registry.degraded_reads)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the bulkheads bound concurrency; the thread pool must not be a tighter, hidden bound
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = sum(h.max_concurrent for h in heads.values())
        try:
            await run_in_threadpool(registry.store.create_schema)
            count = await run_in_threadpool(registry.warm_cache)
            log.info("registry cache warmed: %d entries", count)
        except SQLAlchemyError as exc:
            log.warning("registry database unavailable at start; serving from cache: %s", exc)
        yield
        registry.store.dispose()

    app = FastAPI(title="Runway registry", version="1", lifespan=lifespan)

    def slot(cls: str) -> Callable[[Request], AsyncIterator[None]]:
        async def hold(request: Request) -> AsyncIterator[None]:
            request.state.cls = cls  # the metrics' label: a route's class is declared once
            async with heads[cls].slot():
                yield

        hold.__name__ = f"bulkhead_{cls}"
        return hold

    def require_token(cred: Credentials) -> None:
        if cred is None or not secrets.compare_digest(
            cred.credentials.encode(), settings.api_token.encode()
        ):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    dashboard, api, internal = (Depends(slot(c)) for c in ("dashboard", "api", "internal"))
    write = [api, Depends(require_token)]

    @app.exception_handler(BulkheadFull)
    async def _full(request: Request, exc: BulkheadFull) -> Response:
        rejected.labels(exc.name).inc()
        return JSONResponse(
            {"detail": f"too many {exc.name} requests; retry later"},
            status_code=503,
            headers={"Retry-After": str(exc.retry_after_s)},
        )

    @app.exception_handler(SQLAlchemyError)
    async def _db_down(request: Request, exc: SQLAlchemyError) -> Response:
        return JSONResponse(
            {"detail": "registry database unavailable (a write changed nothing)"},
            status_code=503,
            headers={"Retry-After": str(DB_RETRY_AFTER_S)},
        )

    @app.middleware("http")
    async def _count(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        cls = getattr(request.state, "cls", "api")  # set by the route's bulkhead dependency
        requests.labels(cls, request.method, route, str(response.status_code)).inc()
        return response

    # -- writes (api class) ---------------------------------------------------------------------

    @app.post("/models", status_code=201, dependencies=write)
    async def register_model(body: ModelIn) -> dict[str, Any]:
        return await run_in_threadpool(registry.register_model, body)

    @app.post("/models/{model_id}/versions", status_code=201, dependencies=write)
    async def register_version(model_id: str, body: VersionIn) -> dict[str, Any]:
        return await run_in_threadpool(registry.register_version, model_id, body)

    @app.post("/dependencies", status_code=201, dependencies=write)
    async def add_dependency(body: DependencyIn) -> dict[str, Any]:
        await run_in_threadpool(registry.add_dependency, body)
        return body.model_dump()

    @app.get("/models/{model_id}/versions", dependencies=[api])
    async def versions(model_id: str) -> list[dict[str, Any]]:
        found = await run_in_threadpool(registry.store.versions, model_id)
        return [v.model_dump() for v in found]

    # -- dashboard reads ------------------------------------------------------------------------

    @app.get("/models", dependencies=[dashboard])
    async def list_models() -> dict[str, Any]:
        answer = await run_in_threadpool(registry.models)
        return {**(answer.value or {"models": []}), **_envelope(answer)}

    @app.get("/models/{model_id}", dependencies=[dashboard])
    async def model_detail(model_id: str) -> Response:
        answer, (live, live_warnings) = await asyncio.gather(
            run_in_threadpool(registry.model, model_id),
            run_in_threadpool(registry.live, model_id),
        )
        if answer.value is None:
            raise HTTPException(404, f"no model {model_id!r}")
        body = {**answer.value, "live": live, **_envelope(answer)}
        body["warnings"] = answer.warnings + live_warnings
        return JSONResponse(body, status_code=503 if answer.unavailable else 200)

    @app.get("/models/{model_id}/staleness", dependencies=[dashboard])
    async def staleness(model_id: str, limit: int = 100) -> list[dict[str, Any]]:
        found = await run_in_threadpool(registry.store.staleness_history, model_id, limit)
        return [s.model_dump() for s in found]

    @app.get("/models/{model_id}/retrains", dependencies=[dashboard])
    async def retrains(model_id: str) -> list[dict[str, Any]]:
        found = await run_in_threadpool(registry.store.retrain_requests, model_id)
        return [r.model_dump() for r in found]

    # -- internal -------------------------------------------------------------------------------

    @app.get("/models/{model_id}/impact", dependencies=[internal])
    async def impact(model_id: str) -> dict[str, Any]:
        answer = await run_in_threadpool(registry.impact, model_id)
        return {**(answer.value or {}), **_envelope(answer)}

    @app.get("/models/{model_id}/lineage", dependencies=[internal])
    async def lineage(model_id: str) -> dict[str, Any]:
        answer = await run_in_threadpool(registry.lineage, model_id)
        return {**(answer.value or {}), **_envelope(answer)}

    @app.get("/health", dependencies=[internal])
    async def health_route() -> Response:
        db, redis, kafka = await asyncio.gather(
            run_in_threadpool(registry.database_ok),
            run_in_threadpool(registry.redis_ok),
            kafka_ok(),
        )
        checks = {"kafka": kafka, "redis": redis, "database": db}
        state = health(checks)
        body = {"status": state, "checks": {k: "ok" if v else "down" for k, v in checks.items()}}
        return JSONResponse(body, status_code=503 if state == "failing" else 200)

    @app.get("/metrics", dependencies=[internal])
    async def metrics_route() -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    return app
