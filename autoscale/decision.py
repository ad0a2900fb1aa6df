"""How many workers the join's consumer group should have: a pure function of what was seen.

`decide(policy, observation, memory, now_s)` -> `Decision` (the target size, why, and the memory
to pass to the next call). No I/O, no clock of its own: the supervisor and the tests pass time.

The rules (the seed's numbers are the defaults; Kubernetes' HPA behaves alike):
- bounds first: below the minimum or above the cap, go straight to the bound;
- the cap is `min(max_workers, partitions)`: a consumer without a partition only idles, so the
  seed's 16 partitions cannot use 32 workers; the reason says when the cap is the partitions;
- up when lag > `scale_up_lag_s`, by a step proportional to how far over: `ceil(n * lag / bound)`
  (at least one more), unless the group is already draining fast enough to be caught up within
  the cooldown (consumption minus production rate);
- down by one worker only after the lag stayed under `scale_down_lag_s` for `stabilization_s`
  (a single sample over the low bound restarts that window: no flapping around it);
- between the bounds, hold (hysteresis: no flapping around the high bound either);
- after any change, `cooldown_s` with no further change (the group rebalances meanwhile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal


@dataclass(frozen=True)
class Policy:
    min_workers: int = 4
    max_workers: int = 32
    scale_up_lag_s: float = 300.0
    scale_down_lag_s: float = 30.0
    stabilization_s: float = 300.0
    cooldown_s: float = 120.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_workers <= self.max_workers:
            raise ValueError("need 1 <= min_workers <= max_workers")
        if not 0 <= self.scale_down_lag_s < self.scale_up_lag_s:
            raise ValueError("need 0 <= scale_down_lag_s < scale_up_lag_s")


@dataclass(frozen=True)
class Observation:
    workers: int  # running now
    lag_s: float  # the group's lag in seconds (max over partitions)
    partitions: int  # of the input topics
    offset_lag: int = 0
    consumption_rate: float | None = None  # records/s
    production_rate: float | None = None  # records/s


@dataclass(frozen=True)
class Memory:
    last_change_s: float | None = None  # when the size last changed
    calm_since_s: float | None = None  # lag under the low bound continuously since


@dataclass(frozen=True)
class Decision:
    workers: int
    action: Literal["up", "down", "hold"]
    reason: str
    memory: Memory
    capped: bool = False  # the partition count, not max_workers, limits the size


def cap_for(policy: Policy, partitions: int) -> tuple[int, bool]:
    """The most useful workers and whether the partitions (not max_workers) set it."""
    if 0 < partitions < policy.max_workers:
        return partitions, True
    return policy.max_workers, False


def _cap_note(policy: Policy, partitions: int) -> str:
    return (
        f"capped at {partitions} workers: the input topics have {partitions} partitions "
        f"(max_workers {policy.max_workers})"
    )


def decide(policy: Policy, seen: Observation, memory: Memory, now_s: float) -> Decision:
    cap, by_partitions = cap_for(policy, seen.partitions)
    floor = min(policy.min_workers, cap)
    calm_since = None
    if seen.lag_s < policy.scale_down_lag_s:
        calm_since = memory.calm_since_s if memory.calm_since_s is not None else now_s
    memory = replace(memory, calm_since_s=calm_since)
    n = seen.workers
    lag = f"lag {seen.lag_s:.1f}s"

    def change(target: int, action: Literal["up", "down"], reason: str) -> Decision:
        return Decision(
            target,
            action,
            reason,
            replace(memory, last_change_s=now_s),
            by_partitions and target == cap,
        )

    def hold(reason: str, capped: bool = False) -> Decision:
        return Decision(n, "hold", reason, memory, capped)

    if n < floor:
        return change(floor, "up", f"{n} workers, below the minimum of {floor}")
    if n > cap:
        note = _cap_note(policy, seen.partitions) if by_partitions else f"max_workers {cap}"
        return change(cap, "down", f"{n} workers, above the cap ({note})")
    since_change = math.inf if memory.last_change_s is None else now_s - memory.last_change_s
    cooling = since_change < policy.cooldown_s
    left = policy.cooldown_s - since_change

    if seen.lag_s > policy.scale_up_lag_s:
        wanted = max(math.ceil(n * seen.lag_s / policy.scale_up_lag_s), n + 1)
        target = min(wanted, cap)
        over = f"{lag} > {policy.scale_up_lag_s:g}s"
        if target <= n:
            if by_partitions:
                return hold(f"{over}, but {_cap_note(policy, seen.partitions)}", capped=True)
            return hold(f"{over}, but already at max_workers {cap}")
        if cooling:
            return hold(f"{over}, cooling down ({left:.0f}s left)")
        net = (seen.consumption_rate or 0.0) - (seen.production_rate or 0.0)
        if seen.consumption_rate is not None and net > 0:
            eta = seen.offset_lag / net
            if eta <= policy.cooldown_s:
                return hold(f"{over}, but draining: caught up in ~{eta:.0f}s")
        reason = f"{over}: {n} -> {target} workers (ceil({n} x {seen.lag_s:.1f} / "
        reason += f"{policy.scale_up_lag_s:g}) = {wanted})"
        if target < wanted:
            if by_partitions:
                reason += f"; {_cap_note(policy, seen.partitions)}"
            else:
                reason += f"; max_workers {cap}"
        return change(target, "up", reason)

    if calm_since is not None:
        calm_for = now_s - calm_since
        under = f"{lag} < {policy.scale_down_lag_s:g}s"
        if n <= floor:
            return hold(f"{under}, at the minimum of {floor}")
        if calm_for < policy.stabilization_s:
            return hold(f"{under} for {calm_for:.0f}s of {policy.stabilization_s:g}s")
        if cooling:
            return hold(f"{under}, cooling down ({left:.0f}s left)")
        return change(n - 1, "down", f"{under} for {calm_for:.0f}s: {n} -> {n - 1} workers")

    return hold(
        f"{lag} within [{policy.scale_down_lag_s:g}s, {policy.scale_up_lag_s:g}s]",
        capped=by_partitions and n == cap,
    )
