"""The latency phase's pairing of sent outcomes with the speed view's counts, and its ranks.

Expected latencies are worked out by hand from the CreateTimes and polls below.
"""

from __future__ import annotations

import pytest

from tools.bench_latency import Poll, nearest_rank, outcome_latencies, p99_by_slice, summarize


def test_each_outcome_is_in_the_view_at_the_first_poll_reaching_its_count() -> None:
    sent = {
        "a": [(1_000, 2), (1_500, 1)],  # counts 6..7 then 8 over a base of 5
        "b": [(2_000, 3)],
        "c": [(100, 1), (200, 1)],  # one poll shows both
    }
    polls = [
        Poll(1_200, "a", 6),  # one of the first record's two: not yet the record
        Poll(1_300, "a", 7),
        Poll(2_500, "b", 2),
        Poll(450, "c", 2),
        Poll(1_700, "a", 8),
        Poll(2_600, "b", 3),
    ]
    latencies, unseen = outcome_latencies(sent, sorted(polls, key=lambda p: p.at_ms), {"a": 5})
    assert sorted(latencies) == sorted(
        [(1_000, 300), (1_000, 300), (1_500, 200)] + [(2_000, 600)] * 3 + [(100, 350), (200, 250)]
    )
    assert unseen == 0


def test_outcomes_whose_count_never_shows_are_unseen() -> None:
    latencies, unseen = outcome_latencies(
        {"d": [(100, 2), (150, 4)]}, [Poll(300, "d", 2), Poll(320, "d", 5)], {}
    )
    assert latencies == [(100, 200), (100, 200)]
    assert unseen == 4


def test_a_count_before_the_send_is_refused() -> None:
    with pytest.raises(ValueError, match="before its outcome's CreateTime"):
        outcome_latencies({"e": [(1_000, 1)]}, [Poll(900, "e", 1)], {})


def test_nearest_rank_with_unseen_outcomes_ranked_last() -> None:
    ordered = [10.0, 20.0, 30.0, 40.0]
    assert nearest_rank(ordered, 4, 0.50) == 20.0
    assert nearest_rank(ordered, 4, 0.99) == 40.0
    assert nearest_rank(ordered, 4, 0.0) == 10.0
    assert nearest_rank(ordered, 5, 0.50) == 30.0  # rank 3 of 5
    assert nearest_rank(ordered, 5, 0.99) is None  # rank 5: the unseen one
    assert nearest_rank([], 0, 0.5) is None


def test_p99_per_slice_of_send_time() -> None:
    # Slices of 10 s from the first send (at 10 ms): [10, 10,010) holds 1..100 ms, the next
    # nothing, [20,010, 30,010) 500 and 900 ms (p99 of two: the second).
    early = [(v * 10, float(v)) for v in range(1, 101)]
    late = [(20_010, 500.0), (30_009, 900.0)]
    assert p99_by_slice(early + late, 10_000) == [99.0, 900.0]
    assert p99_by_slice([], 10_000) == []


def test_summary_keys() -> None:
    values = [(1_000, float(v)) for v in range(1, 101)]  # 1..100 ms, all sent at once
    summary = summarize(values, 0)
    assert summary == {
        "outcome_to_view_p50_ms": 50.0,
        "outcome_to_view_p95_ms": 95.0,
        "outcome_to_view_p99_ms": 99.0,
        "outcome_to_view_max_ms": 100.0,
        "outcome_to_view_outcomes": 100,
        "outcome_to_view_unseen": 0,
        "outcome_to_view_p99_ms_by_10s": [99.0],
    }
    assert summarize(values, 2)["outcome_to_view_p99_ms"] is None  # rank 101 of 102: unseen
    assert summarize(values, 2)["outcome_to_view_max_ms"] is None
