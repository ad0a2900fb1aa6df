"""Restore time of one partition from a state snapshot at the seed's loads (docs/capacity.md,
"Snapshots"), from measured figures.

Why: with snapshots a restore is the partition's bytes at download speed plus the changelog
written since the snapshot at Faust's replay rate; both are arithmetic on figures measured by
`runway bench` and `runway bench-recovery` (the plan's sizes are `tools/capacity_model.py`'s),
kept here so that the page's table is reproduced after a new measurement and tested
(tests/unit/test_snapshot_model.py).

The tail is bounded by the snapshot interval: the worst case is a loss just before the next
snapshot, when the partition's changelog has grown for one interval (`interval_s`) since the
newest snapshot.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from tools.capacity_model import DOCUMENTED_BENCH, LOADS, Measured, Plan, design_plan

RETENTION_DAYS = 8  # the production manifest's: 7 days of label TTL + 1 of done retention
INTERVAL_S = 120.0  # deploy/worker.yaml's RUNWAY_STATE_SNAPSHOT_INTERVAL_S
RATES_MB_PER_S = (250.0, 1_000.0)  # volume/NIC classes besides the measured one


@dataclass(frozen=True)
class SnapshotRestore:
    """One partition restored from its newest snapshot, in the worst case of the interval."""

    partition_bytes: float
    download_s: float
    tail_records: float
    tail_s: float

    @property
    def total_s(self) -> float:
        return self.download_s + self.tail_s


def snapshot_restore(
    p: Plan,
    measured: Measured,
    mb_per_s: float,
    interval_s: float = INTERVAL_S,
    replay_keys_per_cpu_s: float | None = None,
) -> SnapshotRestore:
    """`p`'s partition at `mb_per_s`, then one interval of its changelog at the replay rate on
    a core of its own (records per CPU-second: `replay_keys_per_cpu_s`, else the measured
    restore's)."""
    rate = replay_keys_per_cpu_s or measured.restore_keys_per_cpu_s
    changelog_per_s = p.events_per_s / p.partitions * measured.changelog_keys_per_event
    tail = changelog_per_s * interval_s
    return SnapshotRestore(
        partition_bytes=p.partition_bytes,
        download_s=p.partition_bytes / (mb_per_s * 1e6),
        tail_records=tail,
        tail_s=tail / rate,
    )


def table(
    measured: Measured,
    measured_mb_per_s: float,
    interval_s: float = INTERVAL_S,
    bulk_keys_per_cpu_s: float | None = None,
) -> str:
    """The page's table; with `bulk_keys_per_cpu_s`, the tail and the total also at that replay
    rate (RUNWAY_RESTORE_BULK_APPLY's)."""
    rates = (measured_mb_per_s, *RATES_MB_PER_S)
    head = " | ".join(f"download at {r:,.0f} MB/s" for r in rates)
    bulk_head = " | tail replay, bulk | total, bulk" if bulk_keys_per_cpu_s else ""
    rows = [
        f"| load | partitions | bytes a partition | {head} | tail records ({interval_s:g} s) "
        f"| tail replay | total at {RATES_MB_PER_S[0]:,.0f} MB/s{bulk_head} | whole changelog, "
        "core of its own (the measured restore) |",
        "|---|---|---|"
        + "---|" * len(rates)
        + "---|---|---|"
        + ("---|---|" if bulk_keys_per_cpu_s else "")
        + "---|",
    ]
    for name, daily in LOADS:
        p = design_plan(name, daily, RETENTION_DAYS, measured)
        at = [snapshot_restore(p, measured, r, interval_s) for r in rates]
        downloads = " | ".join(f"{s.download_s / 60:,.1f} min" for s in at)
        bulk = ""
        if bulk_keys_per_cpu_s:
            fast = snapshot_restore(p, measured, rates[1], interval_s, bulk_keys_per_cpu_s)
            bulk = f" | {fast.tail_s:,.0f} s | **{fast.total_s / 60:,.0f} min**"
        rows.append(
            f"| {name} ({daily / 1e9:g} B/day) | {p.partitions} "
            f"| {p.partition_bytes / 1e9:,.0f} GB | {downloads} "
            f"| {at[0].tail_records / 1e6:,.2f} M | {at[0].tail_s / 60:,.1f} min "
            f"| {at[1].total_s / 60:,.0f} min{bulk} | {p.restore_hours_per_core:,.0f} h |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default=None, help="runway bench --json (default: documented)")
    parser.add_argument("--recovery", default="var/bench/recovery.json", help="bench-recovery")
    parser.add_argument(
        "--snapshot",
        default="var/bench/recovery-snapshot.json",
        help="bench-recovery --phases snapshot (its snapshot_probe_restore_mb_per_s)",
    )
    parser.add_argument("--interval", type=float, default=INTERVAL_S, help="snapshot interval, s")
    parser.add_argument(
        "--bulk",
        default=None,
        help="bench-recovery --phases cold with RUNWAY_RESTORE_BULK_APPLY on: its replay rate",
    )
    args = parser.parse_args()
    bench = json.loads(Path(args.bench).read_text()) if args.bench else DOCUMENTED_BENCH
    measured = Measured.from_runs(bench, json.loads(Path(args.recovery).read_text()))
    snapshot = json.loads(Path(args.snapshot).read_text())
    bulk = None
    if args.bulk:
        bulk = float(json.loads(Path(args.bulk).read_text())["restore_keys_per_cpu_s"])
    mb_per_s = float(snapshot["snapshot_probe_restore_mb_per_s"])
    print(table(measured, mb_per_s, args.interval, bulk))


if __name__ == "__main__":
    main()
