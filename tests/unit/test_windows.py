"""Sliding windows over minute/hour buckets, against the rule in `config.windows`' docstring."""

from __future__ import annotations

import pytest

from config.windows import Window, bucket_retention, parse_windows

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR


def rule_starts(length_ms: int, gran_ms: int, clock_ms: int) -> list[int]:
    """Bucket starts s (multiples of g, s >= 0) with floor(clock/g)*g - W < s <= clock."""
    last = clock_ms // gran_ms * gran_ms
    lowest = last - length_ms
    first = max(0, (lowest // gran_ms - 1) * gran_ms)  # a multiple of g at or below the bound
    candidates = range(first, clock_ms + 1, gran_ms)
    return sorted((s for s in candidates if lowest < s <= clock_ms), reverse=True)


def test_parse_windows_default_spec() -> None:
    assert parse_windows("1h,24h,7d") == [
        Window("1h", HOUR),
        Window("24h", DAY),
        Window("7d", 7 * DAY),
    ]
    assert parse_windows(" 90s , 30m") == [Window("90s", 90_000), Window("30m", 30 * MIN)]


@pytest.mark.parametrize("bad", ["1w", "h", "1.5h", "", "1h;24h", "-1h"])
def test_parse_windows_rejects_what_is_not_a_duration(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_windows(bad)


def test_granularity_minutes_up_to_six_hours_then_hours() -> None:
    assert Window("6h", 6 * HOUR).gran == "m"
    assert Window("6h", 6 * HOUR).gran_ms == MIN
    assert Window("7h", 7 * HOUR).gran == "h"
    assert Window("7h", 7 * HOUR).gran_ms == HOUR
    assert Window("1h", HOUR).gran == "m"
    assert Window("24h", DAY).gran == "h"


def test_one_hour_window_is_sixty_minute_buckets_ending_with_the_clocks() -> None:
    clock = 1_700_000_123_456  # 2023-11-14T22:15:23.456Z
    last = 1_700_000_100_000  # the start of its minute
    starts = Window("1h", HOUR).bucket_starts(clock)
    assert len(starts) == 60
    assert starts[0] == last
    assert min(starts) == last - 59 * MIN
    assert sorted(starts, reverse=True) == starts


def test_seven_day_window_is_168_hour_buckets() -> None:
    clock = 1_700_000_123_456
    starts = Window("7d", 7 * DAY).bucket_starts(clock)
    assert len(starts) == 168
    assert starts[0] == 1_699_999_200_000  # 22:00Z
    assert min(starts) == 1_699_999_200_000 - 167 * HOUR


@pytest.mark.parametrize(
    "spec", ["1h", "24h", "7d", "30m", "6h", "7h", "25h", "90s", "390m", "59s", "1m", "1d"]
)
@pytest.mark.parametrize("clock", [0, 59_999, 60_000, 3_599_999, 1_700_000_123_456, 7 * DAY + 1])
def test_bucket_starts_follow_the_documented_rule(spec: str, clock: int) -> None:
    (window,) = parse_windows(spec)
    expected = rule_starts(window.length_ms, window.gran_ms, clock)
    assert window.bucket_starts(clock) == expected


def test_bucket_retention_is_the_longest_window_per_granularity() -> None:
    windows = parse_windows("1h,30m,24h,7d")
    assert bucket_retention(windows) == {"m": HOUR, "h": 7 * DAY}
