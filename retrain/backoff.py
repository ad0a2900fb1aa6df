"""Backoff with full jitter, and the orchestrator's Retry-After: pure, randomness injected.

Before attempt n+1 (after n failed attempts) wait uniform in [0, min(cap, base * 2^(n-1))]
(AWS "full jitter"). The seed's pseudo-code adds 10% jitter to a fixed exponential delay; the
issue asks for full jitter, which spreads a herd of retries better.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from email.utils import parsedate_to_datetime


def backoff_ceiling(failed_attempts: int, base_s: float, cap_s: float) -> float:
    """Upper bound of the wait after `failed_attempts` (>= 1) failed attempts."""
    return min(cap_s, base_s * 2 ** (failed_attempts - 1))


def full_jitter(
    failed_attempts: int, base_s: float, cap_s: float, uniform: Callable[[float, float], float]
) -> float:
    return uniform(0.0, backoff_ceiling(failed_attempts, base_s, cap_s))


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent
    or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when: datetime = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_s)
