"""The arithmetic of `runway bench-isolation`: run order, means, ratio, the 10 % verdict, and the
evidence counters (the benchmark itself runs minutes and is not part of the suite)."""

from __future__ import annotations

import pytest

from tools.isolation_bench import counters
from tools.isolation_result import compare, delta, outcomes_after, run_order


def test_run_order_puts_every_hung_run_between_healthy_ones() -> None:
    assert run_order(1) == ["healthy", "hung", "healthy"]
    assert run_order(2) == ["healthy", "hung", "healthy", "hung", "healthy"]
    with pytest.raises(ValueError):
        run_order(0)


def test_run_order_gives_both_phases_the_same_mean_position() -> None:
    order = run_order(3)
    healthy = [i for i, phase in enumerate(order) if phase == "healthy"]
    hung = [i for i, phase in enumerate(order) if phase == "hung"]
    assert sum(healthy) / len(healthy) == sum(hung) / len(hung) == 3.0


def test_compare_means_ratio_and_spread() -> None:
    runs = [("healthy", 20_000.0), ("hung", 19_000.0), ("healthy", 22_000.0), ("hung", 20_000.0),
            ("healthy", 21_000.0)]  # fmt: skip
    result = compare(runs)
    assert result.healthy_events_per_s == 21_000.0
    assert result.hung_events_per_s == 19_500.0
    assert result.ratio == 19_500.0 / 21_000.0  # 0.9286
    assert result.within is True
    assert result.healthy_spread == 2_000.0 / 21_000.0
    assert result.conclusive is True


def test_a_noisy_machine_makes_the_verdict_inconclusive() -> None:
    runs = [("healthy", 20_000.0), ("hung", 20_000.0), ("healthy", 17_000.0)]
    result = compare(runs)
    assert result.within is True  # 20,000 vs 18,500
    assert result.healthy_spread == 3_000.0 / 18_500.0  # 16 %
    assert result.conclusive is False


@pytest.mark.parametrize(
    ("hung", "within"),
    [(9_000.0, True), (8_999.0, False), (11_000.0, True), (11_001.0, False)],
)
def test_within_ten_percent_both_ways(hung: float, within: bool) -> None:
    assert compare([("healthy", 10_000.0), ("hung", hung)]).within is within


def test_compare_needs_both_phases() -> None:
    with pytest.raises(ValueError):
        compare([("healthy", 1.0)])


def test_outcomes_after_counts_only_later_calls() -> None:
    calls = [
        {"seq": 1, "outcome": "started"},
        {"seq": 2, "outcome": "started"},
        {"seq": 3, "outcome": "hung"},
        {"seq": 4, "outcome": "hung"},
        {"seq": 5},
    ]
    assert outcomes_after(calls, 2) == {"hung": 2, "pending": 1}
    assert outcomes_after(calls, 5) == {}


def test_delta_counts_new_counters_from_zero() -> None:
    assert delta({"a": 5.0, "b": 2.0}, {"a": 3.0}) == {"a": 2.0, "b": 2.0}


def test_counters_reads_prometheus_text() -> None:
    text = (
        "# HELP runway_retrain_orchestrator_calls_total Calls\n"
        "# TYPE runway_retrain_orchestrator_calls_total counter\n"
        "runway_retrain_orchestrator_calls_total 7.0\n"
        "# HELP runway_retrain_requests_total Requests\n"
        "# TYPE runway_retrain_requests_total counter\n"
        'runway_retrain_requests_total{status="dead-lettered"} 3.0\n'
        "# HELP runway_retrain_breaker_state State\n"
        "# TYPE runway_retrain_breaker_state gauge\n"
        "runway_retrain_breaker_state 2.0\n"
    )
    assert counters(text) == {
        "runway_retrain_orchestrator_calls_total": 7.0,
        "runway_retrain_requests_total{status=dead-lettered}": 3.0,
    }
