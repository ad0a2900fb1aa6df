"""Which answer a read gives when the database or the cache is down: the seed's
GetModelDependencies, pure. Database first; on failure the cache with a stale warning; else an
empty answer with an unavailable warning. A dead cache never fails a read the database can give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

T = TypeVar("T")

Source = Literal["database", "cache", "none"]


@dataclass(frozen=True)
class Down:
    """A dependency failed to answer; `reason` is for the warning."""

    reason: str


@dataclass(frozen=True)
class Miss:
    """The cache answered and has nothing under the key."""


@dataclass(frozen=True)
class Cached(Generic[T]):
    value: T
    cached_at: int  # epoch ms the value was computed from the database


@dataclass(frozen=True)
class Answer(Generic[T]):
    value: T
    source: Source
    warnings: list[str] = field(default_factory=list)
    stale: bool = False
    unavailable: bool = False
    cached_at: int | None = None


def decide(db: T | Down, cache: Cached[T] | Miss | Down | None, empty: T, now_ms: int) -> Answer[T]:
    """`cache` is None when it was not consulted (the database answered)."""
    if not isinstance(db, Down):
        return Answer(db, "database")
    if isinstance(cache, Cached):
        age_s = max(0, now_ms - cache.cached_at) / 1000
        return Answer(
            cache.value,
            "cache",
            [f"stale: database unavailable ({db.reason}); served from cache, {age_s:.0f} s old"],
            stale=True,
            cached_at=cache.cached_at,
        )
    why = cache.reason if isinstance(cache, Down) else "no cached copy"
    return Answer(
        empty,
        "none",
        [f"unavailable: database unavailable ({db.reason}) and cache: {why}"],
        unavailable=True,
    )


HealthState = Literal["ok", "degraded", "failing"]


def health(checks: dict[str, bool]) -> HealthState:
    """ok: all up. failing: neither the database nor the cache can answer a read (nothing left
    to serve). degraded: anything else down; the API still answers, with warnings."""
    if all(checks.values()):
        return "ok"
    if not checks.get("database", True) and not checks.get("redis", True):
        return "failing"
    return "degraded"
