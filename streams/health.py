"""What a worker's `/health` answers: the truth about progress, recovery and its sinks.

Kubernetes restarts a worker whose liveness probe fails, so 503 means "this process will not
get better by itself": partitions it owns have records waiting and nothing was applied or
checkpointed for `stall_s`, records were applied and their checkpoint is older than
`max_checkpoint_age_s`, or a rebalance has not ended after `stall_s` while no state is being
restored. Restoring state is not a failure (200, "recovering"), nor is a sink
whose service is away (200, "degraded": the join goes on and the view catches up). An idle
worker, with nothing waiting, is healthy however long it has been idle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol


class Progressing(Protocol):
    progressed_at: float  # last record applied or checkpoint that made something durable
    dirty_since: float | None  # oldest record applied and not yet durable


@dataclass(frozen=True)
class Verdict:
    status: str  # "ok", "recovering", "degraded", "stalled"
    reasons: tuple[str, ...] = ()

    @property
    def http_status(self) -> int:
        return 503 if self.status == "stalled" else 200


def judge(
    *,
    now: float,
    recovering: bool,
    rebalance_age: float | None = None,
    restoring: bool = False,
    processors: Iterable[tuple[Progressing, bool]],
    stall_s: float,
    max_checkpoint_age_s: float,
    degraded: Iterable[str] = (),
) -> Verdict:
    """The worker's health from facts gathered by the caller (pure: tested with any clock).

    `processors` pairs each processor with whether records wait for it (in its feed, or past
    its marker in partitions it owns): one processor's backlog says nothing of another's.
    """
    if restoring:
        return Verdict("recovering", ("restoring state",))
    if recovering:
        if rebalance_age is not None and rebalance_age >= stall_s:
            # A rebalance that does not end is a hang (a revocation awaiting a flush that
            # never completes), not recovery: restoring state is the case above.
            return Verdict("stalled", (f"rebalance unfinished for {rebalance_age:.0f} s",))
        return Verdict("recovering", ("rebalancing",))
    stalled = []
    for processor, waiting in processors:
        idle = now - processor.progressed_at
        if waiting and idle >= stall_s:
            stalled.append(f"records waiting and no progress for {idle:.0f} s")
        dirty = processor.dirty_since
        if dirty is not None and now - dirty >= max_checkpoint_age_s:
            stalled.append(f"applied records not checkpointed for {now - dirty:.0f} s")
    if stalled:
        return Verdict("stalled", tuple(stalled))
    reasons = tuple(degraded)
    return Verdict("degraded", reasons) if reasons else Verdict("ok")


def degraded_reasons(checks: Iterable[tuple[str, Callable[[], bool]]]) -> list[str]:
    """The names of the sinks whose service is failing right now."""
    return [f"{name} unavailable" for name, failing in checks if failing()]
