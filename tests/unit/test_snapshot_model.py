"""The snapshot restore model (tools/snapshot_model.py): arithmetic checked by hand."""

from __future__ import annotations

import pytest

from tools.capacity_model import Measured, plan
from tools.snapshot_model import snapshot_restore

MEASURED = Measured(
    worker_events_per_s=20_000.0,
    worker_events_per_cpu_s=20_000.0,
    bytes_per_joined=30.0,
    bytes_per_pending=70.0,
    seen_bytes_per_pair=20.0,
    keys_per_pair=4.0,
    changelog_keys_per_event=3.0,
    restore_keys_per_s=1_000.0,
    restore_keys_per_cpu_s=6_000.0,
)


def test_a_partition_comes_back_at_its_bytes_plus_one_interval_of_changelog() -> None:
    # 8.64 B predictions a day: 200,000 events/s; 8 days of pairs at 50 B; 32 partitions
    p = plan("x", 8.64e9, 8, MEASURED, partitions=32)
    assert p.partition_bytes == pytest.approx(8.64e9 * 8 * 50 / 32)  # 108 GB
    got = snapshot_restore(p, MEASURED, mb_per_s=200.0, interval_s=120.0)
    assert got.download_s == pytest.approx(108e9 / 200e6)  # 540 s
    # 200,000 / 32 = 6,250 events/s a partition, 3 changelog records each, for 120 s
    assert got.tail_records == pytest.approx(6_250 * 3 * 120)  # 2.25 M
    assert got.tail_s == pytest.approx(2.25e6 / 6_000)  # 375 s
    assert got.total_s == pytest.approx(915.0)


def test_a_shorter_interval_shortens_only_the_tail() -> None:
    p = plan("x", 8.64e9, 8, MEASURED, partitions=32)
    long, short = (snapshot_restore(p, MEASURED, 200.0, s) for s in (120.0, 60.0))
    assert short.download_s == long.download_s
    assert short.tail_s == pytest.approx(long.tail_s / 2)


def test_a_faster_replay_shortens_only_the_tail() -> None:
    p = plan("x", 8.64e9, 8, MEASURED, partitions=32)
    got = snapshot_restore(p, MEASURED, 200.0, 120.0, replay_keys_per_cpu_s=225_000.0)
    assert got.tail_s == pytest.approx(2.25e6 / 225_000)  # 10 s
    assert got.download_s == pytest.approx(540.0)
