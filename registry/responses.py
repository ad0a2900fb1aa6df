"""What the registry API answers, as documented in its OpenAPI: every status a route can give.

The answer models are lenient (extra fields pass, ids are plain strings): they describe what is
served, and must never turn a row or cached copy written under older rules into a 500.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from registry.records import Model, Version

Source = Literal["database", "cache", "none"]


class Problem(BaseModel):
    """An error: `detail` says what went wrong (422's `detail` is FastAPI's list instead)."""

    model_config = ConfigDict(extra="allow")

    detail: str


class Envelope(BaseModel):
    """Where a read's answer came from (the registry's degradation, README "Registry")."""

    model_config = ConfigDict(extra="allow")

    source: Source = Field(description="database, cache (stale copy) or none (unavailable).")
    stale: bool
    unavailable: bool
    cached_at: int | None = Field(description="Epoch ms the cached copy was computed.")
    warnings: list[str]


class ModelList(Envelope):
    models: list[Model]


class ModelDetail(Envelope):
    model: Model
    versions: list[Version]
    staleness: dict[str, Any] | None = Field(description="The latest staleness event, if any.")
    live: dict[str, dict[str, str]] | None = Field(
        description="The join's speed view of the model (Redis); null while Redis is down."
    )


class ReachedNode(BaseModel):
    node: str
    kind: str
    depth: int = Field(description="Edges away; 1 = a direct neighbour.")


class Impact(Envelope):
    model_id: str
    impacted: list[str] = Field(description="The model ids among `downstream`, sorted.")
    downstream: list[ReachedNode] = Field(description="In (depth, node) order.")
    truncated: bool = Field(
        description="True when `depth` or `limit` left nodes out (the nearest are kept)."
    )


class Lineage(Envelope):
    model_id: str
    upstream: list[ReachedNode] = Field(description="In (depth, node) order.")
    truncated: bool = Field(
        description="True when `depth` or `limit` left nodes out (the nearest are kept)."
    )


class Health(BaseModel):
    status: Literal["ok", "degraded", "failing"]
    checks: dict[str, Literal["ok", "down"]]


_WHY = {
    400: "The body could not be read (not UTF-8 JSON).",
    401: "Missing or wrong bearer token (Authorization: Bearer <token>).",
    404: "No such model.",
    503: "No slot free in the route's bulkhead, or the registry database is down; retry after "
    "`Retry-After` seconds.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route answering these error statuses (422 FastAPI adds itself)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        doc: dict[str, Any] = {"model": Problem, "description": _WHY[code]}
        if code == 503:
            doc["headers"] = {
                "Retry-After": {"description": "Seconds.", "schema": {"type": "integer"}}
            }
        if code == 401:
            doc["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        out[code] = doc
    return out
