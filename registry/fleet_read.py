"""Where `runway models` and `runway model ID` read: the registry database, or its HTTP API.

The database is the default (`RUNWAY_REGISTRY_DSN`, as `runway api` and the registry agent use):
it needs nothing else running. An operator without a route to the database points
`RUNWAY_REGISTRY_API_URL` (or `--api`) at a `runway api` instead, with a token when reads need
one. Both readers return the same JSON-shaped dicts, so `registry/fleet.py` renders either.
Synchronous: the commands call them in a thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import sqlalchemy as sa

from config.settings import Settings
from registry import graph, schema
from registry.fleet import ModelDetail
from registry.store import Store

Fleet = tuple[list[dict[str, Any]], dict[str, dict[str, Any] | None]]


class FleetReader(Protocol):
    source: str
    warnings: list[str]  # what the source said about its answers (stale cache, Redis down)

    def fleet(self) -> Fleet:
        """Every registered model and its latest verdict (None: none recorded)."""
        ...

    def detail(self, model_id: str, limit: int) -> ModelDetail | None:
        """None: no such model."""
        ...

    def close(self) -> None: ...


def _reached(entries: list[graph.Reached]) -> list[dict[str, Any]]:
    return [{"node": r.node, "kind": r.kind, "depth": r.depth} for r in entries]


class StoreReader:
    def __init__(self, store: Store, source: str = "database") -> None:
        self.store = store
        self.source = source
        self.warnings: list[str] = []

    def _empty(self) -> bool:
        """A database no `runway api` or registry agent has used yet has no tables: no models
        (creating them is left to those writers; a read command changes nothing)."""
        return not sa.inspect(self.store.read).has_table(schema.models.name)

    def fleet(self) -> Fleet:
        if self._empty():
            return [], {}
        models = [m.model_dump() for m in self.store.list_models()]
        found = self.store.latest_staleness_by_model()
        latest: dict[str, dict[str, Any] | None] = {}
        for m in models:
            verdict = found.get(m["model_id"])
            latest[m["model_id"]] = verdict.model_dump() if verdict else None
        return models, latest

    def detail(self, model_id: str, limit: int) -> ModelDetail | None:
        if self._empty():
            return None
        model = self.store.get_model(model_id)
        if model is None:
            return None
        impact = self.store.impact(model_id)
        return ModelDetail(
            model=model.model_dump(),
            versions=[v.model_dump() for v in self.store.versions(model_id)],
            history=[s.model_dump() for s in self.store.staleness_history(model_id, limit)],
            impacted=graph.impacted_models(impact),
            downstream=_reached(impact),
            upstream=_reached(self.store.lineage(model_id)),
            retrains=[r.model_dump() for r in self.store.retrain_requests(model_id)],
        )

    def close(self) -> None:
        self.store.dispose()


class ApiError(RuntimeError):
    """The API answered with an error the command reports as one line."""


def read_token(settings: Settings) -> str | None:
    """Any token reads: the write token first, else a configured read or write one."""
    return settings.api_token or next(iter(settings.api_tokens), None)


class ApiReader:
    """The same reads through `runway api` (percent-encoded ids, the bearer token).

    The API answers from its cache while its database is down (`stale`) or with nothing
    (`unavailable`); its warnings are kept so the command can say so instead of showing an
    empty or old fleet as if it were the truth."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        base = base_url.rstrip("/")
        self.client = httpx.Client(
            base_url=base, headers=headers, timeout=timeout_s, transport=transport
        )
        self.source = f"API {base_url}"
        self.warnings: list[str] = []

    def _get(self, path: str, params: Mapping[str, int] | None = None) -> Any:
        answer = self.client.get(path, params=params)
        if answer.status_code >= 400:
            raise ApiError(f"GET {path}: HTTP {answer.status_code} {answer.text[:200]}")
        doc = answer.json()
        if isinstance(doc, dict):
            self.warnings += [w for w in doc.get("warnings", []) if w not in self.warnings]
        return doc

    def fleet(self) -> Fleet:
        models = self._get("/models")["models"]
        latest: dict[str, dict[str, Any] | None] = {}
        for m in models:
            found = self._get(f"/models/{quote(m['model_id'], safe='')}/staleness", {"limit": 1})
            latest[m["model_id"]] = found[0] if found else None
        return models, latest

    def detail(self, model_id: str, limit: int) -> ModelDetail | None:
        path = f"/models/{quote(model_id, safe='')}"
        answer = self.client.get(path)
        if answer.status_code == 404:
            return None
        if answer.status_code >= 400:
            raise ApiError(f"GET {path}: HTTP {answer.status_code} {answer.text[:200]}")
        doc = answer.json()
        self.warnings += [w for w in doc.get("warnings", []) if w not in self.warnings]
        bounds = {"depth": graph.MAX_DEPTH, "limit": graph.MAX_LIMIT}
        impact = self._get(f"{path}/impact", bounds)
        return ModelDetail(
            model=doc["model"],
            versions=doc["versions"],
            history=self._get(f"{path}/staleness", {"limit": limit}),
            impacted=impact["impacted"],
            downstream=impact["downstream"],
            upstream=self._get(f"{path}/lineage", bounds)["upstream"],
            retrains=self._get(f"{path}/retrains"),
        )

    def close(self) -> None:
        self.client.close()


def reader_for(settings: Settings, api_url: str | None) -> FleetReader:
    url = api_url or settings.registry_api_url
    if url:
        return ApiReader(url, read_token(settings))
    return StoreReader(Store.from_settings(settings))
