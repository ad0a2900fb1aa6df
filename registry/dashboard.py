"""The web dashboard `runway api` serves at /dashboard/: a fleet page and a model page.

The pages are static files shipped in the package (`registry/dashboard_static/`: plain
JavaScript drawing SVG, nothing fetched from elsewhere); they poll two JSON routes every few
seconds, which this module builds:

- GET /dashboard/api/fleet: every registered model with its latest recorded verdict (state,
  score, basis, uncertainty, time) and the speed view's figures of the shortest window (label
  coverage, label delay p95, predictions per hour; the verdict's own window counts when Redis
  has none), the counts per state, and the retrain agent's /health;
- GET /dashboard/api/model?id=...: the model's charts over time, one point per recorded
  verdict (the staleness history), with the WARNING and STALE levels; its verdicts, versions,
  impact and lineage graph, and retrain requests with their status history.

Both are dashboard-class reads (the dashboard bulkhead, the read token when reads need one); the
pages themselves are open, like /health. The routes stay out of the OpenAPI document: they are
the pages' own, not the registry's API. The pure parts (rows, series, graph) are unit-tested.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.params import Depends
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from redis.exceptions import RedisError

from config.settings import Settings
from config.windows import parse_windows
from contracts.ids import MAX_ID_BYTES, check_id, escape_id
from registry import graph
from registry.fleet import NO_VERDICT, FleetRow, fleet_row, state_counts
from registry.records import StalenessRecord
from registry.service import Registry
from staleness import config as staleness_config
from staleness.config import StalenessConfig
from staleness.performance import HIGHER_IS_BETTER

STATIC = Path(__file__).with_name("dashboard_static")
UNKNOWN = "UNKNOWN"  # the pages' state of a model without a recorded verdict
HOUR_MS = 3_600_000
HISTORY_LIMIT = 500  # verdicts a model page charts (one point each)
VERDICTS_LISTED = 100
GRAPH_DEPTH = 3
GRAPH_LIMIT = 25  # nodes each side of the model in its graph
RETRAIN_HEALTH_TIMEOUT_S = 1.0
METRIC_NAMES = {"roc_auc": "ROC AUC", "accuracy": "accuracy", "rmse": "RMSE"}


# -- pure: the fleet --------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """A finite number from a speed-view string or a metrics value, else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        found = float(value)
    except (TypeError, ValueError):
        return None
    return found if math.isfinite(found) else None


def per_hour(count: float | None, window_ms: float | None) -> float | None:
    if count is None or not window_ms:
        return None
    return count * HOUR_MS / window_ms


def dashboard_row(
    row: FleetRow,
    model: Mapping[str, Any],
    verdict: Mapping[str, Any] | None,
    live: Mapping[str, str] | None,
    live_window_ms: int,
) -> dict[str, Any]:
    """One model's line: its fleet row (registry/fleet.py, as `runway models` reads it) under
    the page's names, and the live window's figures when Redis has them (the verdict's own
    window counts otherwise, so a row never shows less than known)."""
    m = (verdict or {}).get("metrics") or {}
    if live:
        predictions = _number(live.get("predictions"))
        coverage = _number(live.get("label_coverage"))
        delay_p95 = _number(live.get("label_delay_p95_ms"))
        rate = per_hour(predictions, live_window_ms)
        figures_from: str | None = "speed view"
    else:
        predictions = _number(m.get("window_predictions"))
        labels = _number(m.get("window_labels"))
        coverage = labels / predictions if predictions and labels is not None else None
        delay_p95 = _number(m.get("window_label_delay_p95_ms"))
        rate = per_hour(predictions, _number(m.get("window_ms")))
        figures_from = "verdict" if verdict else None
    return {
        "model_id": row.model_id,
        "task": row.task,
        "owner": model.get("owner"),
        "state": UNKNOWN if row.state == NO_VERDICT else row.state,
        "score": row.score,
        "basis": list(row.basis),
        "uncertainty": row.uncertainty,
        "reason": row.reason,
        "model_version": row.model_version,
        "event_time": row.event_time,
        "last_verdict_at": row.emitted_at,
        "impacted": len((verdict or {}).get("impacted") or ()),
        "label_coverage": coverage,
        "label_delay_p95_ms": delay_p95,
        "predictions_per_hour": rate,
        "figures_from": figures_from,
    }


def fleet_doc(
    models: Sequence[Mapping[str, Any]],
    latest: Mapping[str, Mapping[str, Any]],
    live: Mapping[str, Mapping[str, str]],
    live_window_ms: int,
) -> dict[str, Any]:
    """The fleet route's rows (in the registry's order: the page sorts) and counts per state."""
    rows = [fleet_row(m, latest.get(m["model_id"])) for m in models]
    return {
        "models": [
            dashboard_row(r, m, latest.get(r.model_id), live.get(r.model_id), live_window_ms)
            for r, m in zip(rows, models, strict=True)
        ],
        "counts": state_counts(rows, none=UNKNOWN),
    }


# -- pure: a model's series -------------------------------------------------------------------


def _worst_feature(metrics: Mapping[str, Any]) -> tuple[str, float] | None:
    found = [
        (k.removeprefix("feature_psi."), v)
        for k, raw in metrics.items()
        if k.startswith("feature_psi.") and (v := _number(raw)) is not None
    ]
    return max(found, key=lambda kv: kv[1], default=None)


def _metric_level(metrics: Mapping[str, Any], share: float) -> float | None:
    """The metric's value at which the performance signal alone reaches a level: degradation
    beyond the point's own noise equal to `share` of the baseline (staleness.performance)."""
    baseline = _number(metrics.get("baseline_value"))
    name = metrics.get("metric")
    if baseline is None or name not in HIGHER_IS_BETTER:
        return None
    step = abs(baseline) * ((_number(metrics.get("degradation_noise")) or 0.0) + share)
    return baseline - step if HIGHER_IS_BETTER[name] else baseline + step


def _series(name: str, label: str, kind: str, points: list[list[float]]) -> dict[str, Any]:
    return {"name": name, "label": label, "kind": kind, "points": points}


def charts(history: Sequence[Mapping[str, Any]], cfg: StalenessConfig) -> list[dict[str, Any]]:
    """The model page's charts from its verdicts in event-time order: one point per verdict
    that has the figure (a verdict without it leaves a gap). Kind `data` is drawn with a dot per
    point; `baseline`, `warning` and `stale` are the levels, drawn as dashed lines."""
    columns: dict[str, list[list[float]]] = {}

    def add(key: str, at: int, value: float | None) -> None:
        if value is not None:
            columns.setdefault(key, []).append([at, value])

    metric_names = set()
    worst_names = set()
    for v in history:
        at, m = int(v["event_time"]), v.get("metrics") or {}
        add("score", at, _number(v["score"]))
        add("score_warning", at, cfg.warning_score)
        add("score_stale", at, cfg.stale_score)
        if isinstance(m.get("metric"), str):
            metric_names.add(m["metric"])
        add("metric_value", at, _number(m.get("metric_value")))
        add("baseline_value", at, _number(m.get("baseline_value")))
        add("metric_warning", at, _metric_level(m, cfg.perf_warning))
        add("metric_stale", at, _metric_level(m, cfg.perf_stale))
        psi = _number(m.get("psi"))
        add("psi", at, psi)
        worst = _worst_feature(m)
        if worst is not None:
            worst_names.add(worst[0])
            add("feature_psi", at, worst[1])
        if psi is not None or worst is not None:
            add("psi_warning", at, cfg.psi_moderate)
            add("psi_stale", at, cfg.psi_significant)
        window_ms = _number(m.get("window_ms"))
        add("predictions_per_hour", at, per_hour(_number(m.get("window_predictions")), window_ms))
        add("labels_per_hour", at, per_hour(_number(m.get("window_labels")), window_ms))
        add("delay_p50", at, _number(m.get("window_label_delay_p50_ms")))
        add("delay_p95", at, _number(m.get("window_label_delay_p95_ms")))

    def s(name: str, label: str, kind: str = "data") -> dict[str, Any]:
        return _series(name, label, kind, columns.get(name, []))

    metric = " / ".join(METRIC_NAMES.get(n, n) for n in sorted(metric_names)) or "metric"
    features = ", ".join(sorted(worst_names)) or "none"
    return [
        {
            "id": "score",
            "title": "Staleness score",
            "series": [
                s("score", "score"),
                s("score_warning", "WARNING", "warning"),
                s("score_stale", "STALE", "stale"),
            ],
        },
        {
            "id": "metric",
            "title": f"{metric} vs baseline",
            "series": [
                s("metric_value", metric),
                s("baseline_value", "baseline", "baseline"),
                s("metric_warning", "WARNING", "warning"),
                s("metric_stale", "STALE", "stale"),
            ],
        },
        {
            "id": "psi",
            "title": "PSI (scores) and the worst feature's",
            "series": [
                s("psi", "PSI"),
                s("feature_psi", f"worst feature ({features})"),
                s("psi_warning", "WARNING", "warning"),
                s("psi_stale", "STALE", "stale"),
            ],
        },
        {
            "id": "volume",
            "title": "Predictions and labels per hour",
            "series": [s("predictions_per_hour", "predictions"), s("labels_per_hour", "labels")],
        },
        {
            "id": "delay",
            "title": "Label delay (ms)",
            "series": [s("delay_p50", "p50"), s("delay_p95", "p95")],
        },
    ]


# -- pure: the impact and lineage graph --------------------------------------------------------


def impact_graph(
    model_id: str,
    down: Iterable[graph.Edge],
    up: Iterable[graph.Edge],
    states: Mapping[str, str],
    depth: int = GRAPH_DEPTH,
    limit: int = GRAPH_LIMIT,
) -> dict[str, Any]:
    """The model in column 0, what it impacts in columns 1..depth, its lineage in -1..-depth
    (the nearest `limit` nodes each side), and the edges among the nodes kept."""
    down_walk = graph.Graph(down).walk_down(model_id, depth, limit)
    up_walk = graph.Graph(up).walk_up(model_id, depth, limit)
    placed: dict[str, dict[str, Any]] = {
        model_id: {"id": model_id, "kind": "model", "column": 0, "row": 0}
    }
    for sign, walk in ((1, down_walk), (-1, up_walk)):
        rows: dict[int, int] = {}
        for r in walk.reached:
            if r.node in placed:  # a node both upstream and downstream: a cycle; shown once
                continue
            column = sign * r.depth
            placed[r.node] = {"id": r.node, "kind": r.kind, "column": column,
                              "row": rows.get(column, 0)}  # fmt: skip
            rows[column] = rows.get(column, 0) + 1
    for node in placed.values():
        node["state"] = states.get(node["id"], UNKNOWN) if node["kind"] == "model" else None
    edges = {
        (e.upstream, e.downstream)
        for e in [*down, *up]
        if e.upstream in placed and e.downstream in placed
    }
    return {
        "nodes": sorted(placed.values(), key=lambda n: (n["column"], n["row"])),
        "edges": [{"from": a, "to": b} for a, b in sorted(edges)],
        "impacted": graph.impacted_models(down_walk.reached),
        "truncated": down_walk.truncated or up_walk.truncated,
    }


def verdict_doc(rec: StalenessRecord) -> dict[str, Any]:
    return rec.model_dump(include={
        "model_version", "state", "score", "basis", "uncertainty", "reason", "event_time",
        "emitted_at", "impacted",
    })  # fmt: skip


# -- I/O ---------------------------------------------------------------------------------------


def live_windows(
    registry: Registry, model_ids: Sequence[str], window: str
) -> dict[str, dict[str, str]]:
    """The speed view's hash of `window` (all versions) for each model, one pipeline."""
    pipe = registry.cache.redis.pipeline(transaction=False)
    prefix = registry.cache.prefix
    for model_id in model_ids:
        pipe.hgetall(f"{prefix}:model:{escape_id(model_id)}:window:{window}")
    found = pipe.execute()
    return {
        m: {_text(k): _text(v) for k, v in h.items()}
        for m, h in zip(model_ids, found, strict=True)
        if h
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def retrain_health(url: str | None) -> dict[str, Any]:
    if not url:
        return {"configured": False}
    try:
        async with httpx.AsyncClient(timeout=RETRAIN_HEALTH_TIMEOUT_S) as client:
            response = await client.get(url)
        return {"configured": True, "url": url, "ok": True, "health": response.json()}
    except (httpx.HTTPError, ValueError) as exc:
        return {"configured": True, "url": url, "ok": False, "error": str(exc) or repr(exc)}


# -- routes ------------------------------------------------------------------------------------


def mount_dashboard(
    app: FastAPI, settings: Settings, registry: Registry, dependencies: Sequence[Depends]
) -> None:
    """Adds the pages, their assets and their JSON routes (`dependencies`: the dashboard
    bulkhead's slot and the read token check, as the other dashboard reads have)."""
    cfg = staleness_config.from_settings(settings)
    shortest = min(parse_windows(settings.windows), key=lambda w: w.length_ms)
    deps = list(dependencies)

    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard_bare() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    @app.get("/dashboard/", include_in_schema=False)
    async def fleet_page() -> FileResponse:
        return FileResponse(STATIC / "fleet.html")

    @app.get("/dashboard/model", include_in_schema=False)
    async def model_page() -> FileResponse:
        return FileResponse(STATIC / "model.html")

    def fleet() -> dict[str, Any]:
        models = [m.model_dump() for m in registry.store.list_models()]
        latest = {k: v.model_dump() for k, v in registry.store.latest_staleness_by_model().items()}
        warnings: list[str] = []
        try:
            live = live_windows(registry, [m["model_id"] for m in models], shortest.name)
        except RedisError as exc:
            live, warnings = {}, [f"speed view unavailable (Redis down: {exc})"]
        doc = fleet_doc(models, latest, live, shortest.length_ms)
        return {**doc, "window": shortest.name, "warnings": warnings}

    @app.get("/dashboard/api/fleet", dependencies=deps, include_in_schema=False)
    async def fleet_json() -> dict[str, Any]:
        body = await run_in_threadpool(fleet)
        body["retrain"] = await retrain_health(settings.dashboard_retrain_health_url)
        body["generated_at"] = registry.clock()
        return body

    def model(model_id: str) -> dict[str, Any] | None:
        answer = registry.model(model_id)
        if answer.value is None:
            return None
        history = list(reversed(registry.store.staleness_history(model_id, HISTORY_LIMIT)))
        down = registry.store.reachable_edges(model_id, "down")
        up = registry.store.reachable_edges(model_id, "up")
        near = {model_id} | {e.upstream for e in [*down, *up]} | {e.downstream for e in down}
        states = {m: v.state for m, v in registry.store.latest_staleness_by_model(near).items()}
        live, warnings = registry.live(model_id)
        return {
            "model": answer.value["model"],
            "versions": answer.value["versions"],
            "latest": verdict_doc(history[-1]) if history else None,
            "verdicts": [verdict_doc(v) for v in reversed(history[-VERDICTS_LISTED:])],
            "charts": charts([v.model_dump() for v in history], cfg),
            "graph": impact_graph(model_id, down, up, states),
            "retrains": [r.model_dump() for r in registry.store.retrain_requests(model_id)],
            "live": live,
            "warnings": answer.warnings + warnings,
            "thresholds": {
                "warning_score": cfg.warning_score,
                "stale_score": cfg.stale_score,
                "psi_moderate": cfg.psi_moderate,
                "psi_significant": cfg.psi_significant,
                "perf_warning": cfg.perf_warning,
                "perf_stale": cfg.perf_stale,
            },  # fmt: skip
        }

    @app.get("/dashboard/api/model", dependencies=deps, include_in_schema=False)
    async def model_json(
        model_id: Annotated[str, Query(alias="id", min_length=1, max_length=MAX_ID_BYTES)],
    ) -> dict[str, Any]:
        problem = check_id(model_id)
        if problem is not None:
            raise HTTPException(422, f"invalid id: {problem}")
        found = await run_in_threadpool(model, model_id)
        if found is None:
            raise HTTPException(404, f"no model {model_id!r}")
        found["retrain"] = await retrain_health(settings.dashboard_retrain_health_url)
        found["generated_at"] = registry.clock()
        return found
