"""The registry's Redis cache: what the API serves while the database is down, and the impact
lists the join worker copies into staleness events.

Key layout (prefix `RUNWAY_REDIS_KEY_PREFIX`, default `runway`), values JSON strings, no TTL
(kept fresh by write-through, never expired, because a stale copy is what the degraded path
serves):

    runway:impact:{model_id}      {"model_id", "impacted": [downstream model ids, sorted],
                                   "downstream": [{"node","kind","depth"}], "computed_at": ms}
    runway:lineage:{model_id}     {"model_id", "upstream": [{"node","kind","depth"}],
                                   "computed_at": ms}
    runway:registry:model:{id}    {"model", "versions", "staleness", "computed_at"}
    runway:registry:models        {"models": [...], "computed_at"}

Ids in keys are escaped (`contracts.ids.escape_id`: `a:b` is `a%3Ab`), as in the speed view.

Every call raises `RedisError` when Redis is down; the caller decides what that means.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from redis import Redis

from contracts.ids import escape_id
from registry.degrade import Cached, Miss


class RegistryCache:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def key(self, kind: str, name: str | None = None) -> str:
        if name is None:
            return f"{self.prefix}:{kind}"
        return f"{self.prefix}:{kind}:{escape_id(name)}"

    def get(self, kind: str, name: str | None = None) -> Cached[Any] | Miss:
        raw = self.redis.get(self.key(kind, name))
        if raw is None:
            return Miss()
        doc = orjson.loads(raw)  # type: ignore[arg-type]
        computed_at = int(doc.pop("computed_at"))
        return Cached(doc, computed_at)

    def put_many(
        self, items: Iterable[tuple[str, str | None, dict[str, Any]]], computed_at: int
    ) -> int:
        """One pipeline round trip for all items; each JSON object gains `computed_at`."""
        pipe = self.redis.pipeline(transaction=False)
        count = 0
        for kind, name, value in items:
            pipe.set(self.key(kind, name), orjson.dumps({**value, "computed_at": computed_at}))
            count += 1
        pipe.execute()
        return count

    def speed_view(self, model_id: str, windows: list[str]) -> dict[str, dict[str, str]]:
        """The join's live speed view of one model: its hash and one hash per window."""
        base = f"{self.prefix}:model:{escape_id(model_id)}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(base)
        for w in windows:
            pipe.hgetall(f"{base}:window:{w}")
        found = pipe.execute()
        out: dict[str, dict[str, str]] = {}
        for name, h in zip(["model", *windows], found, strict=True):
            if h:
                out[name] = {_s(k): _s(v) for k, v in h.items()}
        return out

    def ping(self) -> None:
        self.redis.ping()


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
