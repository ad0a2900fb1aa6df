"""Model age against its maximum age. Pure.

Age runs from the version's trained time when known (the age of the data it learned from), else
its deployed time, else the first event time the join saw for it (the reference window's start).
The maximum age is the registry's for the version when declared, else `max_age_ms` (default 30
days, `RUNWAY_STALENESS_MAX_AGE_MS`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgeAssessment:
    age_ms: int
    max_age_ms: int
    since: str  # "trained", "deployed" or "first_seen"

    @property
    def fraction(self) -> float:
        return self.age_ms / self.max_age_ms


def assess_age(
    now_ms: int,
    max_age_ms: int,
    trained_at_ms: int | None = None,
    deployed_at_ms: int | None = None,
    first_seen_ms: int | None = None,
) -> AgeAssessment | None:
    """None when no start time is known (the verdict then goes without age)."""
    for since, start in (
        ("trained", trained_at_ms),
        ("deployed", deployed_at_ms),
        ("first_seen", first_seen_ms),
    ):
        if start is not None:
            return AgeAssessment(max(now_ms - start, 0), max(max_age_ms, 1), since)
    return None
