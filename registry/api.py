"""The registry's HTTP API (`runway api`): FastAPI, OpenAPI at /openapi.json.

Request classes (bulkheads, seed limits, settings `RUNWAY_BULKHEAD_*`):

- dashboard: GET /models, GET /models/{id}, GET /models/{id}/staleness, GET /models/{id}/retrains
  (what people's screens poll);
- api: POST /models, POST /models/{id}/versions, GET /models/{id}/versions, POST /dependencies
  (programmatic clients: CI, training pipelines);
- internal: GET /models/{id}/impact, GET /models/{id}/lineage, /health, /metrics (Runway's own
  services and the load balancer: small, hot, must not queue behind dashboards).

Writes need a write token (`registry.tokens`; 401 otherwise, checked before the body, so nothing
changes); reads need a read or write token once a read token is configured (/health and /metrics
never do). Invalid bodies, query parameters and path ids get FastAPI's 422 naming the field
(`detail[].loc`): an id in a path passes the same grammar (`contracts.ids`) as one in a body.
Every status a route can answer is in the OpenAPI document; `make fuzz-api` holds it to that.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import unquote

import anyio.to_thread
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from config.settings import Settings
from contracts.ids import ID_PATTERN, MAX_ID_BYTES, check_id
from registry import graph
from registry.bulkhead import Bulkhead, BulkheadFull
from registry.dashboard import mount_dashboard
from registry.degrade import Answer, health
from registry.records import DependencyIn, Model, ModelIn, RetrainRequest, Version, VersionIn
from registry.responses import (
    Health,
    Impact,
    Lineage,
    ModelDetail,
    ModelList,
    errors,
)
from registry.service import Registry
from registry.tokens import Role, Tokens

log = logging.getLogger(__name__)

KafkaCheck = Callable[[], Awaitable[bool]]
DB_RETRY_AFTER_S = 5
STALENESS_MAX_LIMIT = 1000
# module level: FastAPI resolves the (string) annotation in this module's globals
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]


# -- ids in paths ---------------------------------------------------------------------------------

_SEGMENT_ESCAPE = re.compile("%2F|%25")


def routing_path(raw_path: bytes) -> str:
    """The request path as the routes match it: decoded, except that a `/` or `%` inside a
    segment stays escaped (`%2F`, `%25`), so that an id holding a `/` (`team/fraud`, sent as
    `team%2Ffraud`) is one path parameter instead of two segments no route has."""
    segments = raw_path.split(b"?", 1)[0].decode("latin-1").split("/")
    return "/".join(unquote(s).replace("%", "%25").replace("/", "%2F") for s in segments)


def unescape_segment(value: str) -> str:
    """The inverse of `routing_path`'s escaping, for one path parameter."""
    return _SEGMENT_ESCAPE.sub(lambda m: "/" if m.group() == "%2F" else "%", value)


class SegmentPaths:
    """ASGI middleware: routes match `routing_path`, not the server's fully decoded path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        if scope["type"] == "http" and raw and re.search(rb"%2[fF5]", raw):
            scope = {**scope, "path": routing_path(raw)}
        await self.app(scope, receive, send)


def model_id_param(
    model_id: Annotated[
        str,
        Path(
            min_length=1,
            max_length=MAX_ID_BYTES,
            pattern=ID_PATTERN,
            description="A model id (`contracts.ids`: printable, at most "
            f"{MAX_ID_BYTES} bytes once escaped); percent-encode `/` and `%`.",
        ),
    ],
) -> str:
    value = unescape_segment(model_id)
    problem = check_id(value)
    if problem is not None:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("path", "model_id"),
                    "msg": f"Value error, invalid id: {problem}",
                    "input": value,
                }
            ]
        )
    return value


ModelId = Annotated[str, Depends(model_id_param)]
Depth = Annotated[
    int,
    Query(
        ge=1,
        le=graph.MAX_DEPTH,
        description=f"Edges to follow at most (1 to {graph.MAX_DEPTH}).",
    ),
]
Limit = Annotated[
    int,
    Query(ge=1, le=graph.MAX_LIMIT, description=f"Nodes to list at most (1 to {graph.MAX_LIMIT})."),
]


# -- the app --------------------------------------------------------------------------------------


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


def json_safe(value: Any) -> Any:
    """`value` with each non-finite float as its name (JSON has no NaN or Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf"
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route of this path answers: the `Allow` of a 405 (Starlette's names
    only the methods of the first route that matched the path)."""
    probe = {**scope, "method": "\0"}
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(probe)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def create_api(
    settings: Settings,
    registry: Registry,
    kafka_ok: KafkaCheck,
    tokens: Tokens,
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
    app.add_middleware(SegmentPaths)

    def slot(cls: str) -> Callable[[Request], AsyncIterator[None]]:
        async def hold(request: Request) -> AsyncIterator[None]:
            request.state.cls = cls  # the metrics' label: a route's class is declared once
            async with heads[cls].slot():
                yield

        hold.__name__ = f"bulkhead_{cls}"
        return hold

    def needs(role: Role) -> Callable[[Credentials], None]:
        def check(cred: Credentials) -> None:
            if not tokens.allows(cred.credentials if cred else None, role):
                raise HTTPException(
                    401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
                )

        check.__name__ = f"require_{role}_token"
        return check

    dashboard, api, internal = (Depends(slot(c)) for c in ("dashboard", "api", "internal"))
    write = [api, Depends(needs("write"))]
    read = [Depends(needs("read"))] if tokens.reads_need_token else []
    read_errors = (401, 503) if tokens.reads_need_token else (503,)

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

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own handler echoes each error's input: a NaN there failed the 422 itself
        detail = json_safe(jsonable_encoder(exc.errors()))
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            exc.headers = {
                **(exc.headers or {}),
                "Allow": ", ".join(allowed_methods(app, request.scope)),
            }
        return await http_exception_handler(request, exc)

    @app.middleware("http")
    async def _count(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        cls = getattr(request.state, "cls", "api")  # set by the route's bulkhead dependency
        requests.labels(cls, request.method, route, str(response.status_code)).inc()
        return response

    # -- writes (api class) ---------------------------------------------------------------------

    write_errors = errors(400, 401, 503)

    @app.post("/models", status_code=201, dependencies=write, responses=write_errors)
    async def register_model(body: ModelIn) -> Model:
        return Model.model_validate(await run_in_threadpool(registry.register_model, body))

    @app.post(
        "/models/{model_id}/versions", status_code=201, dependencies=write, responses=write_errors
    )
    async def register_version(model_id: ModelId, body: VersionIn) -> Version:
        saved = await run_in_threadpool(registry.register_version, model_id, body)
        return Version.model_validate(saved)

    @app.post("/dependencies", status_code=201, dependencies=write, responses=write_errors)
    async def add_dependency(body: DependencyIn) -> DependencyIn:
        await run_in_threadpool(registry.add_dependency, body)
        return body

    @app.get(
        "/models/{model_id}/versions", dependencies=[api, *read], responses=errors(*read_errors)
    )
    async def versions(model_id: ModelId) -> list[Version]:
        return await run_in_threadpool(registry.store.versions, model_id)

    # -- dashboard reads ------------------------------------------------------------------------

    @app.get("/models", dependencies=[dashboard, *read], responses=errors(*read_errors))
    async def list_models() -> ModelList:
        answer = await run_in_threadpool(registry.models)
        return ModelList.model_validate({**(answer.value or {"models": []}), **_envelope(answer)})

    @app.get(
        "/models/{model_id}",
        dependencies=[dashboard, *read],
        responses=errors(*read_errors, 404),
        response_model=ModelDetail,
    )
    async def model_detail(model_id: ModelId) -> Response:
        answer, (live, live_warnings) = await asyncio.gather(
            run_in_threadpool(registry.model, model_id),
            run_in_threadpool(registry.live, model_id),
        )
        if answer.value is None:
            raise HTTPException(404, f"no model {model_id!r}")
        if answer.unavailable:
            body = {"detail": "registry database and cache unavailable", **_envelope(answer)}
            headers = {"Retry-After": str(DB_RETRY_AFTER_S)}
            return JSONResponse(body, status_code=503, headers=headers)
        body = {**answer.value, "live": live, **_envelope(answer)}
        body["warnings"] = answer.warnings + live_warnings
        return JSONResponse(ModelDetail.model_validate(body).model_dump(mode="json"))

    @app.get(
        "/models/{model_id}/staleness",
        dependencies=[dashboard, *read],
        responses=errors(*read_errors),
    )
    async def staleness(
        model_id: ModelId,
        limit: Annotated[
            int, Query(ge=1, le=STALENESS_MAX_LIMIT, description="Latest events to list.")
        ] = 100,
    ) -> list[dict[str, Any]]:
        found = await run_in_threadpool(registry.store.staleness_history, model_id, limit)
        return [s.model_dump() for s in found]

    @app.get(
        "/models/{model_id}/retrains",
        dependencies=[dashboard, *read],
        responses=errors(*read_errors),
    )
    async def retrains(model_id: ModelId) -> list[RetrainRequest]:
        return await run_in_threadpool(registry.store.retrain_requests, model_id)

    # -- internal -------------------------------------------------------------------------------

    @app.get(
        "/models/{model_id}/impact", dependencies=[internal, *read], responses=errors(*read_errors)
    )
    async def impact(
        model_id: ModelId, depth: Depth = graph.DEFAULT_DEPTH, limit: Limit = graph.DEFAULT_LIMIT
    ) -> Impact:
        answer = await run_in_threadpool(registry.impact, model_id, depth, limit)
        return Impact.model_validate({**(answer.value or {}), **_envelope(answer)})

    @app.get(
        "/models/{model_id}/lineage", dependencies=[internal, *read], responses=errors(*read_errors)
    )
    async def lineage(
        model_id: ModelId, depth: Depth = graph.DEFAULT_DEPTH, limit: Limit = graph.DEFAULT_LIMIT
    ) -> Lineage:
        answer = await run_in_threadpool(registry.lineage, model_id, depth, limit)
        return Lineage.model_validate({**(answer.value or {}), **_envelope(answer)})

    @app.get(
        "/health",
        dependencies=[internal],
        response_model=Health,
        responses={503: {"model": Health, "description": "Neither database nor Redis answers."}},
    )
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

    @app.get(
        "/metrics",
        dependencies=[internal],
        response_class=PlainTextResponse,
        responses={
            200: {
                "content": {"text/plain": {"schema": {"type": "string"}}},
                "description": "Prometheus text exposition format.",
            },
            **errors(503),
        },
    )
    async def metrics_route() -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    mount_dashboard(app, settings, registry, [dashboard, *read])  # /dashboard/: its own module
    return app
