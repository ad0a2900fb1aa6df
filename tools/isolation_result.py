"""The arithmetic of `runway bench-isolation`: the order of its runs and its verdict. Pure.

The question (issue 5): with the orchestrator hanging, does the join's throughput stay within
10 % of its figure with a healthy orchestrator, measured in the same run?
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

HEALTHY = "healthy"
HUNG = "hung"
TOLERANCE = 0.10


def run_order(rounds: int) -> list[str]:
    """healthy, hung, healthy, ..., healthy: every hung run sits between two healthy ones, so
    both phases have the same mean position in time and a machine that drifts linearly
    (warming caches, a neighbour's load ramping) biases neither mean."""
    if rounds < 1:
        raise ValueError("at least one round")
    return [HEALTHY, HUNG] * rounds + [HEALTHY]


@dataclass(frozen=True)
class Comparison:
    healthy_events_per_s: float  # mean over the healthy runs
    hung_events_per_s: float  # mean over the hung runs
    ratio: float  # hung / healthy
    within: bool  # |hung - healthy| <= tolerance x healthy
    healthy_spread: float  # (max - min) / mean of the healthy runs: the noise floor
    conclusive: bool  # the healthy runs agree within the tolerance themselves


def compare(runs: Sequence[tuple[str, float]], tolerance: float = TOLERANCE) -> Comparison:
    """`runs` are (phase, events/s). "Within 10 %" is read both ways: a hung orchestrator that
    made the join 10 % faster would be as suspicious as one that made it slower."""
    healthy = [rate for phase, rate in runs if phase == HEALTHY]
    hung = [rate for phase, rate in runs if phase == HUNG]
    if not healthy or not hung:
        raise ValueError("need at least one healthy and one hung run")
    healthy_mean, hung_mean = fmean(healthy), fmean(hung)
    ratio = hung_mean / healthy_mean
    spread = (max(healthy) - min(healthy)) / healthy_mean
    return Comparison(
        healthy_events_per_s=healthy_mean,
        hung_events_per_s=hung_mean,
        ratio=ratio,
        within=abs(hung_mean - healthy_mean) <= tolerance * healthy_mean,  # exact at the edge
        healthy_spread=spread,
        conclusive=spread <= tolerance,  # else the machine's noise alone exceeds the bound
    )


def outcomes_after(calls: Iterable[dict[str, Any]], after_seq: int) -> dict[str, int]:
    """The stand-in's recorded calls with `seq` above `after_seq`, counted by outcome
    (`started`, `duplicate`, `hung`, a failure's status code)."""
    counted = Counter(
        str(call.get("outcome", "pending")) for call in calls if int(call["seq"]) > after_seq
    )
    return dict(sorted(counted.items()))


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """Counter increases between two snapshots (a counter absent before counts from 0)."""
    return {name: value - before.get(name, 0.0) for name, value in sorted(after.items())}
