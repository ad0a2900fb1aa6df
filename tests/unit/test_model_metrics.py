"""Per-model metrics: `runway_model_staleness_score{model_id}` and `runway_model_state{model_id,
state}` (1 for the state of the latest verdict, 0 for the two others), set where the staleness
emitter shows a verdict and removed when the model leaves this worker."""

from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest

from contracts.telemetry import Telemetry
from sinks.staleness import StalenessEmitter


def series(telemetry: Telemetry) -> dict[str, float]:
    """Every sample of the two per-model metrics, by its exposition line's name and labels."""
    out = {}
    for line in generate_latest(telemetry.registry).decode().splitlines():
        if line.startswith(("runway_model_state", "runway_model_staleness_score")):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_one_state_at_one_and_forgetting_removes_every_series() -> None:
    t = Telemetry()
    t.model_verdict("a", "WARNING", 0.45)
    t.model_verdict("b", "FRESH", 0.0)
    t.model_verdict("a", "STALE", 0.8)  # a's later verdict replaces its state
    assert series(t) == {
        'runway_model_staleness_score{model_id="a"}': 0.8,
        'runway_model_staleness_score{model_id="b"}': 0.0,
        'runway_model_state{model_id="a",state="FRESH"}': 0.0,
        'runway_model_state{model_id="a",state="WARNING"}': 0.0,
        'runway_model_state{model_id="a",state="STALE"}': 1.0,
        'runway_model_state{model_id="b",state="FRESH"}': 1.0,
        'runway_model_state{model_id="b",state="WARNING"}': 0.0,
        'runway_model_state{model_id="b",state="STALE"}': 0.0,
    }
    t.forget_model("a")
    t.forget_model("never-seen")  # nothing to remove: no error
    assert sorted(series(t)) == [
        'runway_model_staleness_score{model_id="b"}',
        'runway_model_state{model_id="b",state="FRESH"}',
        'runway_model_state{model_id="b",state="STALE"}',
        'runway_model_state{model_id="b",state="WARNING"}',
    ]


class FakePipeline:
    def delete(self, key: str) -> None: ...

    def hset(self, key: str, mapping: dict[str, Any]) -> None: ...

    async def execute(self) -> None: ...


class FakeRedis:
    def pipeline(self, transaction: bool) -> FakePipeline:
        return FakePipeline()


def event(model_id: str, state: str, score: float, event_time: int) -> dict[str, Any]:
    return {"model_id": model_id, "state": state, "score": score, "event_time": event_time}


async def test_the_emitter_sets_them_with_each_verdict_shown_and_drops_them_on_move() -> None:
    t = Telemetry()
    emitter = StalenessEmitter(
        reader_for=lambda partition: None,  # every partition moved away
        send=lambda key, value: None,
        redis=FakeRedis(),  # type: ignore[arg-type]
        redis_prefix="test",
        cfg=None,  # type: ignore[arg-type]  (nothing is judged here)
        heartbeat_interval_ms=60_000,
        telemetry=t,
        clock_ms=lambda: 1_000,
    )
    await emitter._show("a", event("a", "STALE", 0.9, 10))
    await emitter._show("b", event("b", "FRESH", 0.1, 10))
    assert series(t)['runway_model_state{model_id="a",state="STALE"}'] == 1.0
    assert series(t)['runway_model_staleness_score{model_id="b"}'] == 0.1
    emitter.forget(0, {"a": ["v1"]})  # forgotten as idle
    emitter.add(1, {"b"})
    assert await emitter.flush() == 0  # b's partition moved: its new owner judges it
    assert series(t) == {}
