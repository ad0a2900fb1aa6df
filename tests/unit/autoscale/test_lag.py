"""Lag arithmetic: seconds from stored timestamps, offset lag, rates and drain time."""

from __future__ import annotations

from autoscale.lag import (
    PartitionOffsets,
    RateWindow,
    as_json,
    drain_seconds,
    group_lag,
    lag_seconds,
)

NOW_MS = 1_700_000_600_000


def test_lag_is_now_minus_the_timestamp_of_the_record_at_the_committed_offset() -> None:
    p = PartitionOffsets("predictions", 0, committed=40, start=0, end=100)
    assert p.offset_lag == 60
    assert lag_seconds(p, head_timestamp_ms=NOW_MS - 42_500, now_ms=NOW_MS) == 42.5


def test_caught_up_is_zero_whatever_the_last_timestamp() -> None:
    p = PartitionOffsets("predictions", 0, committed=100, start=0, end=100)
    assert p.offset_lag == 0
    assert lag_seconds(p, head_timestamp_ms=NOW_MS - 3_600_000, now_ms=NOW_MS) == 0.0


def test_no_committed_offset_counts_from_the_earliest_record() -> None:
    p = PartitionOffsets("outcomes", 3, committed=None, start=20, end=70)
    assert (p.position, p.offset_lag) == (20, 50)


def test_committed_below_log_start_resumes_at_the_start_and_past_the_end_is_caught_up() -> None:
    assert PartitionOffsets("o", 0, committed=5, start=20, end=70).offset_lag == 50
    assert PartitionOffsets("o", 0, committed=90, start=20, end=70).offset_lag == 0


def test_clock_skew_never_gives_negative_lag() -> None:
    p = PartitionOffsets("predictions", 0, committed=0, start=0, end=1)
    assert lag_seconds(p, head_timestamp_ms=NOW_MS + 5_000, now_ms=NOW_MS) == 0.0


def test_drain_seconds() -> None:
    assert drain_seconds(0, None) == 0.0
    assert drain_seconds(1_000, 250.0) == 4.0
    assert drain_seconds(1_000, 0.0) is None
    assert drain_seconds(1_000, None) is None


def test_rates_from_successive_samples_over_the_window() -> None:
    window = RateWindow(window_s=10.0)
    a = [PartitionOffsets("p", 0, 100, 0, 500), PartitionOffsets("p", 1, None, 0, 200)]
    b = [PartitionOffsets("p", 0, 300, 0, 900), PartitionOffsets("p", 1, 50, 0, 260)]
    window.add(0.0, a)
    assert window.rates() == (None, None)
    window.add(5.0, b)
    # consumed (300-100)+(50-0) = 250 in 5 s; produced (900-500)+(260-200) = 460 in 5 s
    assert window.rates() == (50.0, 92.0)
    assert window.partition_rate(("p", 0)) == 40.0
    c = [PartitionOffsets("p", 0, 1300, 0, 1400), PartitionOffsets("p", 1, 250, 0, 260)]
    window.add(20.0, c)  # the sample at 0 s falls out; 5 s .. 20 s remains
    assert window.rates() == ((1000 + 200) / 15.0, (500 + 0) / 15.0)


def test_group_lag_is_the_max_over_partitions_and_offset_lag_the_sum() -> None:
    offsets = [
        PartitionOffsets("predictions", 0, 10, 0, 110),
        PartitionOffsets("predictions", 1, 50, 0, 50),
        PartitionOffsets("outcomes", 0, None, 0, 30),
        PartitionOffsets("outcomes", 1, 5, 0, 15),
    ]
    heads = {
        ("predictions", 0): NOW_MS - 12_000,
        ("outcomes", 0): NOW_MS - 90_000,
        ("outcomes", 1): NOW_MS - 1_000,
    }
    window = RateWindow(30.0)
    window.add(0.0, [PartitionOffsets(o.topic, o.partition, 0, 0, o.end) for o in offsets])
    window.add(10.0, offsets)
    lag = group_lag("g", offsets, heads, NOW_MS, window)
    assert lag.lag_s == 90.0
    assert lag.offset_lag == 100 + 0 + 30 + 10
    assert [p.lag_s for p in lag.partitions] == [90.0, 1.0, 12.0, 0.0]  # sorted by topic
    # consumed 10 + 50 + 0 + 5 = 65 records in 10 s
    assert lag.consumption_rate == 6.5
    assert lag.drain_s == 140 / 6.5
    assert lag.partition_count == 2
    doc = as_json(lag)
    assert doc["lag_seconds"] == 90.0 and doc["offset_lag"] == 140
    assert doc["partitions"][0] == {  # type: ignore[index]
        "topic": "outcomes",
        "partition": 0,
        "committed": None,
        "end": 30,
        "offset_lag": 30,
        "lag_seconds": 90.0,
        "rate": 0.0,
        "drain_seconds": None,
    }
