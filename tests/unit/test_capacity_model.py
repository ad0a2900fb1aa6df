"""The capacity model's arithmetic, checked against figures worked out by hand."""

from __future__ import annotations

import dataclasses

import pytest

from tools.capacity_model import (
    Measured,
    design_plan,
    next_power_of_two,
    plan,
    standby_cpu_share,
)

MEASURED = Measured(
    worker_events_per_s=10_000.0,
    worker_events_per_cpu_s=10_000.0,
    bytes_per_joined=30.0,
    bytes_per_pending=70.0,
    seen_bytes_per_pair=20.0,
    keys_per_pair=4.0,
    changelog_keys_per_event=2.0,
    restore_keys_per_s=1_000.0,
    restore_keys_per_cpu_s=4_000.0,
)


def test_next_power_of_two() -> None:
    assert [next_power_of_two(n) for n in (1, 2, 3, 17, 32, 33)] == [1, 2, 4, 32, 32, 64]


def test_a_plan_at_a_load_worked_out_by_hand() -> None:
    # 8.64 B predictions a day = 100,000/s, 200,000 events/s; 70 % of 10,000 = 7,000 a worker
    p = plan("x", 8.64e9, 10, MEASURED)
    assert p.events_per_s == pytest.approx(200_000)
    assert p.workers == 29  # 200,000 / 7,000 = 28.57
    assert p.partitions == 32
    assert p.pairs == pytest.approx(86.4e9)  # 10 days of predictions
    assert p.state_bytes == pytest.approx(86.4e9 * 50)  # 30 join + 20 batch view
    assert p.partition_bytes == pytest.approx(86.4e9 * 50 / 32)
    assert p.partition_keys == pytest.approx(86.4e9 * 4 / 32)  # 10.8 B keys
    assert p.restore_hours == pytest.approx(10.8e9 / 1_000 / 3_600)  # 3,000 h
    assert p.restore_hours_per_core == pytest.approx(10.8e9 / 4_000 / 3_600)  # 750 h
    # all 345.6 B keys, 14.4 M keys restored per core-hour: 24,000 partitions
    assert p.partitions_for_rto == 24_000


def test_a_partition_count_can_be_given() -> None:
    assert plan("x", 8.64e9, 10, MEASURED, partitions=128).partition_keys == pytest.approx(
        86.4e9 * 4 / 128
    )


def test_the_standby_share_is_its_apply_cpu_per_event_over_the_joins() -> None:
    # 2 changelog records an event at 4,000 a CPU-second: 0.5 ms; the join: 0.1 ms an event
    assert standby_cpu_share(MEASURED) == pytest.approx(5.0)


def test_measured_figures_from_the_two_benchmarks_json() -> None:
    bench = {
        "worker_events_per_s": 10_000,
        "worker_events_per_cpu_s": 9_000,
        "state_bytes_per_joined": 30,
        "state_bytes_per_pending": 70,
    }
    recovery = {
        "state_pairs": 1_000,
        "state_live_keys": 3_800,
        "state_keys_join": 2_000,
        "state_keys_batch_view": 1_800,  # 900 pairs remembered, two keys each
        "state_sst_bytes_batch_view": 27_000,
        "restore_keys": 5_000,
        "events": 2_000,
        "restore_keys_per_s": 1_000,
        "restore_keys_per_cpu_s": 5_000,
    }
    measured = Measured.from_runs(bench, recovery)
    assert measured.seen_bytes_per_pair == 30.0  # 27,000 / 900
    assert measured.keys_per_pair == 4.0  # 2 of the join's a pair, 2 of the batch view's
    assert measured.changelog_keys_per_event == 2.5
    assert measured.worker_events_per_cpu_s == 9_000


def test_the_deployment_keeps_the_recovery_floor_of_partitions_or_more() -> None:
    # 8.64 B a day needs 32 partitions for throughput at 7,000 a worker; the floor of "year 3"
    # (128) wins, and a floor below the rule's count leaves the rule's
    assert design_plan("year 3", 8.64e9, 10, MEASURED).partitions == 128
    assert design_plan("current", 8.64e9, 10, MEASURED).partitions == 32
    fast = dataclasses.replace(MEASURED, worker_events_per_s=100_000.0)  # 3 workers: 4 by rule
    assert design_plan("current", 8.64e9, 10, fast).partitions == 32
    assert design_plan("nameless", 8.64e9, 10, fast).partitions == 4
