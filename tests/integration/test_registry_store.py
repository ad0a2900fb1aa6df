"""The registry store against real SQLite and PostgreSQL: the same answers from both."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from registry.graph import Reached
from registry.records import DependencyIn, ModelIn, VersionIn
from registry.store import Store, make_engine
from tests.integration.registry_support import registry_dsn  # noqa: F401  (fixture)


@pytest.fixture
def store(registry_dsn: str) -> Iterator[Store]:  # noqa: F811
    clock = iter(range(1_000, 10**9, 10))
    store = Store(make_engine(registry_dsn, 3.0), clock=lambda: next(clock))
    store.create_schema()
    store.create_schema()  # idempotent
    yield store
    store.dispose()


def test_models_and_versions(store: Store) -> None:
    store.upsert_model(ModelIn(model_id="fraud", owner="risk"))
    v = store.upsert_version(
        "fraud",
        VersionIn(version="v1", task="binary", trained_at=5, deployed_at=7,
                  baseline_metrics={"auc": 0.91}),
    )  # fmt: skip
    assert (v.model_id, v.task, v.trained_at, v.deployed_at) == ("fraud", "binary", 5, 7)
    assert v.baseline_metrics == {"auc": 0.91} and v.max_age_ms == 30 * 86_400_000
    store.upsert_version("churn", VersionIn(version="2", task="regression", max_age_ms=1000))
    assert [m.model_id for m in store.list_models()] == ["churn", "fraud"]
    fraud = store.get_model("fraud")
    assert fraud is not None and fraud.owner == "risk" and fraud.task is None
    churn = store.get_model("churn")
    assert churn is not None and churn.task == "regression"  # registered by its version
    assert store.get_model("nope") is None
    store.upsert_version("fraud", VersionIn(version="v1", task="binary", max_age_ms=99))
    assert [(x.version, x.max_age_ms) for x in store.versions("fraud")] == [("v1", 99)]


def test_impact_and_lineage_three_levels_with_a_cycle(store: Store) -> None:
    store.add_dependencies(
        [
            DependencyIn(upstream="ds", downstream="a", kind="dataset"),
            DependencyIn(upstream="a", downstream="f", downstream_kind="feature"),
            DependencyIn(upstream="f", downstream="b", kind="feature"),
            DependencyIn(upstream="b", downstream="c"),
            DependencyIn(upstream="c", downstream="b"),  # a cycle
            DependencyIn(upstream="x", downstream="y"),
        ]
    )
    store.add_dependency(DependencyIn(upstream="a", downstream="d"))
    store.add_dependency(DependencyIn(upstream="a", downstream="d"))  # twice: one edge
    assert store.impact("a") == [
        Reached("d", "model", 1), Reached("f", "feature", 1),
        Reached("b", "model", 2), Reached("c", "model", 3),
    ]  # fmt: skip
    assert store.impacted("a") == ["b", "c", "d"]
    assert store.lineage("c") == [
        Reached("b", "model", 1), Reached("f", "feature", 2),
        Reached("a", "model", 3), Reached("ds", "dataset", 4),
    ]  # fmt: skip
    assert store.impacted("y") == []
    assert len(store.edges()) == 7


EVENT = {
    "schema_version": 1, "model_id": "fraud", "model_version": "v1", "state": "STALE",
    "score": 0.8, "basis": ["drift", "age"], "uncertainty": 0.3, "reason": "drifted",
    "event_time": 5_000, "emitted_at": 6_000, "metrics": {"psi": 0.31},
    "impacted": ["b"], "unknown_field": 1,
}  # fmt: skip


def test_staleness_recorded_once(store: Store) -> None:
    assert store.record_staleness(EVENT) is True
    assert store.record_staleness(EVENT) is False
    assert store.record_staleness({**EVENT, "emitted_at": 7_000, "state": "WARNING"}) is True
    assert store.count_staleness("fraud") == 2
    latest = store.latest_staleness("fraud")
    assert latest is not None
    assert (latest.state, latest.emitted_at, latest.basis) == ("WARNING", 7_000, ["drift", "age"])
    assert latest.metrics == {"psi": 0.31} and latest.impacted == ["b"]


def test_retrain_requests_idempotent_history(store: Store) -> None:
    store.record_retrain("r1", "fraud", "v1", 1, "queued", None, 100)
    store.record_retrain("r1", "fraud", "v1", 1, "started", "run 7", 200)
    store.record_retrain("r1", "fraud", "v1", 1, "started", "run 7", 200)  # redelivered
    store.record_retrain("r1", "fraud", "v1", 1, "queued", None, 100)  # late duplicate
    store.record_retrain("r2", "fraud", "v1", 2, "dead-lettered", "breaker open", 300)
    with pytest.raises(ValueError):
        store.record_retrain("r3", "fraud", "v1", 3, "exploded", None, 400)
    reqs = store.retrain_requests("fraud")
    assert [(r.request_id, r.status, r.detail, r.created_at, r.updated_at) for r in reqs] == [
        ("r1", "started", "run 7", 100, 200),
        ("r2", "dead-lettered", "breaker open", 300, 300),
    ]
    assert [(s.status, s.at) for s in reqs[0].history] == [("queued", 100), ("started", 200)]
    assert store.retrain_requests("other") == []
