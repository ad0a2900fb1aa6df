"""The capacity and recovery model of docs/capacity.md, from measured figures.

Why a module: every number in that page is arithmetic on a few measured figures (the bench's
throughput and state bytes, bench-recovery's restore speed) and the seed's loads; kept here,
the page's tables are reproduced by `python -m tools.capacity_model` after a new measurement,
and the arithmetic is tested (tests/unit/test_capacity_model.py).

Conventions: an event is a prediction or an outcome, every prediction is counted with an
outcome (2 events per prediction: the upper bound); a prediction's pair is kept from its event
time for the label TTL plus the done retention (tables/join.py: a joined or expired pair's
deadline is prediction time + TTL + retention), and the batch view remembers each joined pair
as long (agents/batch_view.py: retention = TTL + done retention).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DAY_S = 86_400
HOUR_S = 3_600
HEADROOM = 0.7  # workers planned at 70 % of the measured figure (README, "Capacity")
LOADS = (("current", 10e9), ("year 1", 15e9), ("year 3", 40e9))  # the seed's daily predictions
# `runway bench --peer quix --json`, clean clone of 3512312 (docs/bench-3512312.json; docs/bench.md)
DOCUMENTED_BENCH = {
    "worker_events_per_s": 30_680.4,
    "worker_events_per_cpu_s": 32_792.6,
    "state_bytes_per_joined": 44.4,
    "state_bytes_per_pending": 73.5,
}
# The deployment's partitions at each load, at least what throughput asks: a partition's state
# is what one snapshot download brings back (docs/capacity.md, "Snapshots"), so a faster worker,
# which needs fewer partitions for throughput, must not make each partition larger.
RECOVERY_PARTITIONS = {"current": 32, "year 1": 32, "year 3": 128}


@dataclass(frozen=True)
class Measured:
    """The measured inputs, each from its command (docs/capacity.md names them)."""

    worker_events_per_s: float  # runway bench: one worker, records of 100
    worker_events_per_cpu_s: float  # runway bench: ... per CPU-second of the worker
    bytes_per_joined: float  # runway bench: join table, compacted SST bytes per joined pair
    bytes_per_pending: float  # runway bench: ... per pending prediction
    seen_bytes_per_pair: float  # bench-recovery: the batch view's SST bytes per joined pair
    keys_per_pair: float  # bench-recovery: live keys per labelled pair (join's + batch view's 2)
    changelog_keys_per_event: float  # bench-recovery: changelog records written per event
    restore_keys_per_s: float  # bench-recovery: Faust's restore, wall clock, this machine
    restore_keys_per_cpu_s: float  # bench-recovery: ... per CPU-second of the restoring worker

    @classmethod
    def from_runs(cls, bench: dict[str, Any], recovery: dict[str, Any]) -> Measured:
        pairs = max(int(recovery["state_pairs"]), 1)
        # The batch view remembers a joined pair as an `s` key and its expiry-index entry.
        remembered = int(recovery.get("state_keys_batch_view", 0)) // 2
        seen_bytes = int(recovery.get("state_sst_bytes_batch_view", 0)) / max(remembered, 1)
        join_keys = int(recovery.get("state_keys_join", recovery["state_live_keys"]))
        return cls(
            worker_events_per_s=float(bench["worker_events_per_s"]),
            worker_events_per_cpu_s=float(bench["worker_events_per_cpu_s"]),
            bytes_per_joined=float(bench["state_bytes_per_joined"]),
            bytes_per_pending=float(bench["state_bytes_per_pending"]),
            seen_bytes_per_pair=seen_bytes,
            keys_per_pair=join_keys / pairs + (2 if remembered else 0),
            changelog_keys_per_event=float(recovery["restore_keys"]) / float(recovery["events"]),
            restore_keys_per_s=float(recovery["restore_keys_per_s"]),
            restore_keys_per_cpu_s=float(recovery["restore_keys_per_cpu_s"]),
        )


@dataclass(frozen=True)
class Plan:
    """One load under one retention: sizes, state and the time a full restore takes."""

    name: str
    daily_predictions: float
    retention_days: float  # label TTL + done retention
    events_per_s: float
    workers: int
    partitions: int
    pairs: float  # pairs in state, all partitions
    state_bytes: float  # join + batch view, compacted
    partition_bytes: float
    partition_keys: float
    restore_hours: float  # one partition from its changelog, at the measured wall rate
    restore_hours_per_core: float  # ... on a core of its own (CPU rate)
    partitions_for_rto: int  # partitions for a full restore of one within an hour (CPU rate)


def next_power_of_two(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def plan(
    name: str,
    daily_predictions: float,
    retention_days: float,
    measured: Measured,
    partitions: int | None = None,
    min_partitions: int = 0,
) -> Plan:
    """`partitions` given, or the next power of two >= workers, but at least `min_partitions`."""
    events_per_s = 2 * daily_predictions / DAY_S
    workers = math.ceil(events_per_s / (HEADROOM * measured.worker_events_per_s))
    partitions = partitions or max(next_power_of_two(workers), min_partitions)
    pairs = daily_predictions * retention_days
    state = pairs * (measured.bytes_per_joined + measured.seen_bytes_per_pair)
    keys = pairs * measured.keys_per_pair / partitions
    per_core_keys_in_an_hour = measured.restore_keys_per_cpu_s * HOUR_S
    return Plan(
        name=name,
        daily_predictions=daily_predictions,
        retention_days=retention_days,
        events_per_s=events_per_s,
        workers=workers,
        partitions=partitions,
        pairs=pairs,
        state_bytes=state,
        partition_bytes=state / partitions,
        partition_keys=keys,
        restore_hours=keys / measured.restore_keys_per_s / HOUR_S,
        restore_hours_per_core=keys / measured.restore_keys_per_cpu_s / HOUR_S,
        partitions_for_rto=math.ceil(pairs * measured.keys_per_pair / per_core_keys_in_an_hour),
    )


def design_plan(name: str, daily_predictions: float, retention_days: float, m: Measured) -> Plan:
    """`plan` on the deployment's partitions: the throughput rule's or the recovery floor's."""
    return plan(
        name, daily_predictions, retention_days, m, min_partitions=RECOVERY_PARTITIONS.get(name, 0)
    )


def standby_cpu_share(measured: Measured) -> float:
    """CPU a standby replica spends applying an active's changelog, per CPU the active spends
    joining it: changelog records per event / Faust's apply rate per CPU-second, against the
    join's CPU per event."""
    per_event_standby = measured.changelog_keys_per_event / measured.restore_keys_per_cpu_s
    per_event_join = 1 / measured.worker_events_per_cpu_s
    return per_event_standby / per_event_join


def tables(measured: Measured) -> str:
    """The page's tables, in Markdown."""
    rows = [
        "| load | retention | events/s | workers | partitions | state (join + batch view) "
        "| per partition | keys per partition | full restore of one partition, this machine "
        "| on a core of its own | partitions for a 1 h full restore |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for retention in (14, 8):
        for name, daily in LOADS:
            p = design_plan(name, daily, retention, measured)
            rows.append(
                f"| {name} ({daily / 1e9:g} B/day) | {retention} d | {p.events_per_s:,.0f} "
                f"| {p.workers} | {p.partitions} | {p.state_bytes / 1e12:,.2f} TB "
                f"| {p.partition_bytes / 1e9:,.0f} GB | {p.partition_keys / 1e9:,.2f} B "
                f"| {p.restore_hours:,.0f} h ({p.restore_hours / 24:,.1f} d) "
                f"| {p.restore_hours_per_core:,.0f} h | {p.partitions_for_rto:,} |"
            )
    rows.append("")
    rows.append(f"standby CPU per unit of join CPU: {standby_cpu_share(measured):.2f}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bench", default=None, help="runway bench --json output (default: docs/bench.md's)"
    )
    parser.add_argument("--recovery", default="var/bench/recovery.json", help="bench-recovery")
    args = parser.parse_args()
    bench = json.loads(Path(args.bench).read_text()) if args.bench else DOCUMENTED_BENCH
    measured = Measured.from_runs(bench, json.loads(Path(args.recovery).read_text()))
    print(measured)
    print(tables(measured))


if __name__ == "__main__":
    main()
