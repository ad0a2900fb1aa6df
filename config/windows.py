"""Sliding windows over event-time buckets. Pure.

A window of length W with bucket size g covers the W/g buckets that end with the bucket holding
the model's clock (the latest event time seen for the model): buckets whose start s satisfies
floor(clock/g)*g - W < s <= clock. Windows up to 6 h use 1-minute buckets, longer ones 1-hour
buckets. An event counts in the buckets of its prediction's timestamp.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
_UNITS = {"s": 1000, "m": MINUTE_MS, "h": HOUR_MS, "d": 24 * HOUR_MS}
GRANULARITIES = {"m": MINUTE_MS, "h": HOUR_MS}


@dataclass(frozen=True)
class Window:
    name: str
    length_ms: int

    @property
    def gran(self) -> str:
        return "m" if self.length_ms <= 6 * HOUR_MS else "h"

    @property
    def gran_ms(self) -> int:
        return GRANULARITIES[self.gran]

    def bucket_starts(self, clock_ms: int) -> list[int]:
        g = self.gran_ms
        last = clock_ms // g * g
        count = max(-(-self.length_ms // g), 1)  # ceil: a window of 90 s spans 2 minute buckets
        return [last - i * g for i in range(count) if last - i * g >= 0]


def parse_windows(spec: str) -> list[Window]:
    windows = []
    for part in spec.split(","):
        name = part.strip()
        match = re.fullmatch(r"(\d+)([smhd])", name)
        if not match:
            raise ValueError(f"window {name!r} is not like 1h, 24h or 7d")
        windows.append(Window(name, int(match.group(1)) * _UNITS[match.group(2)]))
    return windows


def bucket_retention(windows: list[Window]) -> dict[str, int]:
    """How long after its end each granularity's bucket can still fall inside a window."""
    retention: dict[str, int] = {}
    for window in windows:
        retention[window.gran] = max(retention.get(window.gran, 0), window.length_ms)
    return retention
