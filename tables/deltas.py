"""What the events of one record change in metric buckets and model records, summed first. Pure.

A record holds up to a thousand events of one model, mostly of one version and one minute. Each
event used to read, change and write four buckets (minute and hour, its version's and all
versions') and its model record; summed here per (model, version, minute) and per model, the
record touches each of them once (`JoinRules.settle`).
"""

from __future__ import annotations

from collections.abc import ItemsView
from dataclasses import dataclass, field
from typing import Any

from config.windows import MINUTE_MS


class Deltas:
    """Per (model, version or None, minute start): a delta in the bucket aggregates' shape."""

    def __init__(self) -> None:
        self._by: dict[tuple[str, str | None, int], dict[str, Any]] = {}

    def at(self, model_id: str, version: str | None, ts: int) -> dict[str, Any]:
        """The delta an event at `ts` adds to (created empty)."""
        key = (model_id, version, ts - ts % MINUTE_MS)
        delta = self._by.get(key)
        if delta is None:
            delta = self._by[key] = {}
        return delta

    def items(self) -> ItemsView[tuple[str, str | None, int], dict[str, Any]]:
        return self._by.items()

    def clear(self) -> None:
        self._by.clear()

    def __bool__(self) -> bool:
        return bool(self._by)


@dataclass
class ModelTouch:
    """A model record's changes: latest event time, versions in order, last task and times."""

    clock: int
    versions: list[str] = field(default_factory=list)
    task: str | None = None
    lp: int | None = None  # latest prediction time
    lo: int | None = None  # latest outcome time
