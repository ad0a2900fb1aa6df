"""validate-failover's verdicts: each check's status from what was read, and the exit code."""

from __future__ import annotations

from rich.console import Console

from registry.graph import Edge
from registry.recovery_cli import checks_table
from registry.validate import (
    Check,
    PartitionState,
    Status,
    brokers_check,
    expected_impacts,
    graph_check,
    lag_check,
    overall,
    registry_check,
    report,
    unreachable,
    views_check,
)

NOW = 1_800_000_000_000


def test_the_exit_code_is_the_worst_status() -> None:
    ok, degraded, failing = (Check("a", s, "") for s in Status)
    assert overall([]) == Status.OK
    assert overall([ok, ok]) == 0
    assert overall([ok, degraded, ok]) == 1
    assert overall([degraded, failing, ok]) == 2
    doc = report([ok, Check("s3", Status.DEGRADED, "away", {"n": 1})], at_ms=NOW)
    assert doc == {
        "status": "degraded",
        "exit_code": 1,
        "at_ms": NOW,
        "checks": [
            {"name": "a", "status": "ok", "detail": ""},
            {"name": "s3", "status": "degraded", "detail": "away", "n": 1},
        ],
    }


def test_registry_must_answer_and_hold_models() -> None:
    assert registry_check(3).status == Status.OK
    assert registry_check(0).status == Status.FAILING
    assert unreachable("registry", "refused").status == Status.FAILING
    assert unreachable("s3", "refused", Status.DEGRADED).status == Status.DEGRADED


# a -> b -> c (models), f (feature) -> a, b -> d (model)
EDGES = [
    Edge("a", "b"),
    Edge("b", "c"),
    Edge("f", "a", kind="feature"),
    Edge("b", "d"),
]
MODELS = {"a", "b", "c", "d"}
IMPACTS = {"a": ["b", "c", "d"], "b": ["c", "d"], "c": [], "d": []}


def test_expected_impacts_are_the_downstream_models() -> None:
    assert expected_impacts(MODELS, EDGES) == IMPACTS


def test_graph_consistent() -> None:
    found = graph_check(MODELS, EDGES, dict(IMPACTS))
    assert found.status == Status.OK
    assert found.figures["stale_cache"] == [] and found.figures["missing_cache"] == []


def test_graph_stale_missing_and_dangling() -> None:
    cached: dict[str, list[str] | None] = {**IMPACTS, "a": ["b", "c"], "d": None}
    found = graph_check(MODELS, [*EDGES, Edge("c", "ghost")], cached)
    assert found.status == Status.DEGRADED
    # the new edge makes c's impact ["ghost"] and adds ghost to a's and b's
    assert found.figures["dangling"] == ["ghost"]
    assert found.figures["stale_cache"] == ["a", "b", "c"]
    assert found.figures["missing_cache"] == ["d"]
    assert "1 unregistered models (ghost)" in found.detail


def test_graph_with_the_cache_unreadable_checks_the_edges_only() -> None:
    found = graph_check(MODELS, EDGES, None)
    assert found.status == Status.DEGRADED and "could not be read" in found.detail
    assert "stale_cache" not in found.figures


def test_lag_against_its_bound() -> None:
    assert lag_check("g", 60.0, 10, max_lag_s=60.0).status == Status.OK
    over = lag_check("g", 60.5, 10, max_lag_s=60.0)
    assert over.status == Status.DEGRADED and over.figures["lag_s"] == 60.5


def test_views_by_event_time_age() -> None:
    clocks = {"fresh": NOW - 10_000, "edge": NOW - 300_000, "old": NOW - 300_001, "none": None}
    found = views_check(clocks, NOW, max_age_s=300.0)
    assert found.status == Status.DEGRADED
    assert found.figures["stale"] == ["none", "old"]
    assert found.figures["oldest_s"] == 300.001
    fresh = views_check({"m": NOW + 5_000}, NOW, max_age_s=300.0)  # a clock ahead: age 0
    assert fresh.status == Status.OK and fresh.figures["oldest_s"] == 0.0
    assert views_check({}, NOW, 300.0).status == Status.DEGRADED


def _p(partition: int, leader: int, replicas: list[int], isr: list[int]) -> PartitionState:
    return PartitionState("predictions", partition, leader, tuple(replicas), tuple(isr))


def test_brokers_healthy() -> None:
    parts = [_p(0, 1, [1, 2, 3], [1, 2, 3]), _p(1, 2, [2, 3, 1], [2, 3, 1])]
    found = brokers_check({1, 2, 3}, parts, [], min_insync=2)
    assert found.status == Status.OK and found.figures["partitions"] == 2


def test_one_broker_down_is_degraded() -> None:
    parts = [_p(0, 1, [1, 2, 3], [1, 2]), _p(1, 2, [2, 1], [2, 1])]
    found = brokers_check({1, 2}, parts, [], min_insync=2)
    assert found.status == Status.DEGRADED
    assert (found.figures["under_replicated"], found.figures["brokers_down"]) == (1, [3])


def test_under_min_isr_or_offline_is_failing() -> None:
    below = brokers_check({1}, [_p(0, 1, [1, 2, 3], [1])], [], min_insync=2)
    assert below.status == Status.FAILING and below.figures["under_min_isr"] == 1
    offline = brokers_check({1, 2}, [_p(0, -1, [3], [])], [], min_insync=1)
    assert offline.status == Status.FAILING and offline.figures["offline"] == 1
    # a single-replica dev topic: min.insync is capped at the replicas
    assert brokers_check({1}, [_p(0, 1, [1], [1])], [], min_insync=2).status == Status.OK
    assert brokers_check(set(), [], [], min_insync=1).status == Status.FAILING


def test_a_missing_topic_is_degraded() -> None:
    found = brokers_check({1}, [_p(0, 1, [1], [1])], ["joined"], min_insync=1)
    assert found.status == Status.DEGRADED and found.figures["missing_topics"] == ["joined"]


def test_the_table_shows_each_check_and_the_exit_code() -> None:
    console = Console(width=200, record=True)
    checks = [
        Check("redis", Status.OK, "reachable"),
        Check("views", Status.DEGRADED, "1 of 2 models older"),
    ]
    console.print(checks_table(checks))
    text = console.export_text()
    assert "validate-failover: degraded (exit 1)" in text
    assert "redis" in text and "reachable" in text and "1 of 2 models older" in text
