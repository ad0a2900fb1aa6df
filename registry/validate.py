"""`runway validate-failover`, the verdicts: pure functions from what was read to a status each.

Why a command of its own: after a failover (a promoted registry standby, a restored snapshot, the
standby region's workers) "the processes run" says little. This asks what a user of Runway relies
on: the registry answers and holds models, its dependency graph and the cached copy the workers
put in staleness events agree, the join keeps up, the views are current, and Kafka can take
writes. Each check is healthy (0), degraded (1: working, needs attention) or failing (2: a part
of the product is out); the command exits with the worst.

- registry: failing when unreachable or holding no models.
- graph: degraded when an edge names an unregistered model, or a cached impact list (what the
  workers copy into staleness events) differs from the registry's or is missing.
- lag: failing when the join group's lag cannot be read; degraded above
  RUNWAY_FAILOVER_MAX_LAG_S.
- redis: failing when unreachable (no speed view, no registry cache).
- s3: degraded when unreachable (the batch view holds its offsets and retries); healthy when
  nothing is configured on S3.
- views: failing when unreadable; degraded with no model, or a model whose clock (latest event
  time) is older than RUNWAY_FAILOVER_MAX_VIEW_AGE_S.
- brokers: failing when none answers, or a partition of Runway's topics has no leader or fewer
  in-sync replicas than min.insync.replicas (acks=all writes refused); degraded when one is
  under-replicated, a replica's broker is down or a topic is missing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from registry import graph

SHOWN = 5  # names listed in a check's detail; the JSON has them all


class Status(IntEnum):
    OK = 0
    DEGRADED = 1
    FAILING = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    figures: Mapping[str, object] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "status": self.status.label,
            "detail": self.detail,
            **dict(self.figures),
        }


def overall(checks: Iterable[Check]) -> Status:
    return max((c.status for c in checks), default=Status.OK)


def report(checks: Sequence[Check], at_ms: int) -> dict[str, object]:
    """The `--json` document: the overall status, its exit code, every check."""
    worst = overall(checks)
    return {
        "status": worst.label,
        "exit_code": int(worst),
        "at_ms": at_ms,
        "checks": [c.as_json() for c in checks],
    }


def _names(items: Iterable[str]) -> str:
    found = sorted(items)
    more = f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
    return ", ".join(found[:SHOWN]) + more


def unreachable(name: str, error: str, status: Status = Status.FAILING) -> Check:
    return Check(name, status, f"unreachable: {error}")


def registry_check(models: int) -> Check:
    if models == 0:
        return Check("registry", Status.FAILING, "reachable but holds no models", {"models": 0})
    return Check("registry", Status.OK, f"{models:,} models", {"models": models})


def expected_impacts(models: Iterable[str], edges: Iterable[graph.Edge]) -> dict[str, list[str]]:
    """Each model's downstream model ids, as the registry would cache them (unbounded walk)."""
    g = graph.Graph(edges)
    return {m: graph.impacted_models(g.walk_down(m).reached) for m in models}


def graph_check(
    models: set[str],
    edges: Sequence[graph.Edge],
    cached: Mapping[str, list[str] | None] | None,
) -> Check:
    """`cached`: each model's cached `impacted` list (None: no entry), None when Redis could not
    be read (then only the edges are checked against the registry)."""
    dangling = {
        node
        for e in edges
        for node, kind in ((e.upstream, e.kind), (e.downstream, e.downstream_kind))
        if kind == "model" and node not in models
    }
    figures: dict[str, object] = {"edges": len(edges), "dangling": sorted(dangling)}
    problems = []
    if dangling:
        problems.append(f"edges name {len(dangling)} unregistered models ({_names(dangling)})")
    if cached is None:
        problems.append("the cached impact lists could not be read")
    else:
        expected = expected_impacts(models, edges)
        missing = {m for m in models if cached.get(m) is None}
        differ = {m for m in models if m not in missing and cached[m] != expected[m]}
        figures.update(missing_cache=sorted(missing), stale_cache=sorted(differ))
        if missing:
            problems.append(f"{len(missing)} models have no cached impact ({_names(missing)})")
        if differ:
            problems.append(f"{len(differ)} cached impact lists differ ({_names(differ)})")
    if problems:
        return Check("graph", Status.DEGRADED, "; ".join(problems), figures)
    return Check("graph", Status.OK, f"{len(edges):,} edges agree with the registry", figures)


def lag_check(group: str, lag_s: float, offset_lag: int, max_lag_s: float) -> Check:
    figures = {"group": group, "lag_s": round(lag_s, 3), "offset_lag": offset_lag,
               "max_lag_s": max_lag_s}  # fmt: skip
    said = f"group {group}: {lag_s:,.1f} s behind ({offset_lag:,} records)"
    if lag_s > max_lag_s:
        return Check("lag", Status.DEGRADED, f"{said}, above {max_lag_s:g} s", figures)
    return Check("lag", Status.OK, said, figures)


def views_check(clocks: Mapping[str, int | None], now_ms: int, max_age_s: float) -> Check:
    """`clocks`: each model of the speed view and its clock (latest event time; None: no hash).

    Event time, not write time: a view is rewritten only when its model gets events, so what
    says it is current is how far its clock trails now.
    """
    if not clocks:
        return Check("views", Status.DEGRADED, "no model in the speed view", {"models": 0})
    ages = {m: math.inf if c is None else max(now_ms - c, 0) / 1000 for m, c in clocks.items()}
    stale = {m for m, age in ages.items() if age > max_age_s}
    finite = [a for a in ages.values() if a != math.inf]
    figures: dict[str, object] = {
        "models": len(clocks),
        "stale": sorted(stale),
        "oldest_s": round(max(finite), 3) if finite else None,
        "max_age_s": max_age_s,
    }
    if stale:
        detail = (f"{len(stale)} of {len(clocks)} models older than {max_age_s:g} s "
                  f"({_names(stale)})")  # fmt: skip
        return Check("views", Status.DEGRADED, detail, figures)
    oldest = max(finite, default=0.0)
    return Check("views", Status.OK, f"{len(clocks):,} models, oldest {oldest:,.1f} s", figures)


@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    leader: int  # -1: none
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


def brokers_check(
    live: set[int],
    partitions: Sequence[PartitionState],
    missing_topics: Sequence[str],
    min_insync: int,
) -> Check:
    """Kafka as the join and its producers need it: a leader for every partition, and enough
    in-sync replicas that `acks=all` writes are taken (`min_insync`, capped at the replicas)."""
    if not live:
        return Check("brokers", Status.FAILING, "no broker answers")
    offline = [p for p in partitions if p.leader < 0 or p.leader not in live]
    below = [p for p in partitions if len(p.isr) < min(min_insync, len(p.replicas))]
    under = [p for p in partitions if len(p.isr) < len(p.replicas)]
    down = {r for p in partitions for r in p.replicas} - live
    figures: dict[str, object] = {
        "brokers": sorted(live),
        "brokers_down": sorted(down),
        "partitions": len(partitions),
        "offline": len(offline),
        "under_min_isr": len(below),
        "under_replicated": len(under),
        "missing_topics": list(missing_topics),
    }

    def where(found: list[PartitionState]) -> str:
        return _names(f"{p.topic}[{p.partition}]" for p in found)

    failing, degraded = [], []
    if offline:
        failing.append(f"{len(offline)} partitions without a leader ({where(offline)})")
    if below:
        failing.append(f"{len(below)} partitions under min.insync.replicas ({where(below)})")
    if under:
        degraded.append(f"{len(under)} under-replicated partitions ({where(under)})")
    if down:
        degraded.append(f"brokers {_names(str(b) for b in down)} down")
    if missing_topics:
        degraded.append(f"topics missing: {_names(missing_topics)}")
    if failing or degraded:
        status = Status.FAILING if failing else Status.DEGRADED
        return Check("brokers", status, "; ".join(failing + degraded), figures)
    said = f"{len(live)} brokers up, {len(partitions)} partitions fully replicated"
    return Check("brokers", Status.OK, said, figures)
