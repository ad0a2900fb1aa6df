"""The reference window: found from the buckets, re-merged until it settles, then frozen."""

from __future__ import annotations

from config.windows import parse_windows
from staleness.config import DAY_MS, StalenessConfig
from staleness.inputs import current_version, staleness_inputs
from staleness.reference import (
    first_seen,
    load_reference,
    reference_key,
    refresh_reference,
)
from staleness.scorer import references_to_store, score_model
from tables import aggregates, keys
from tests.unit.staleness.sim import MINUTE, T0, Sim, binary_draw, exp_delay

HOUR = 60 * MINUTE
CFG = StalenessConfig()
START = T0 + 5 * HOUR + 17 * MINUTE  # the version's first prediction, mid-hour


def run(days: float) -> Sim:
    sim = Sim("m1", "v1", "binary", CFG)
    sim.run(START, START + int(days * DAY_MS), 60, binary_draw(), exp_delay(30 * MINUTE))
    return sim


def test_window_is_the_first_24h_from_the_first_predictions_hour() -> None:
    sim = run(1.5)
    ref = sim.read(reference_key("m1", "v1"))
    assert (ref["start"], ref["end"], ref["frozen"]) == (T0 + 5 * HOUR, T0 + 29 * HOUR, False)
    expected = aggregates.merge(
        sim.read(keys.bucket("m1", "v1", "h", s)) for s in range(ref["start"], ref["end"], HOUR)
    )
    assert ref["agg"] == expected and expected["n"] == 60 * 24 - 17  # 60/h from :17
    assert first_seen(sim.read, "m1", "v1", sim.clock, 7 * DAY_MS) == T0 + 5 * HOUR


def test_frozen_after_settle_and_kept_when_buckets_expire() -> None:
    sim = run(9)  # hour buckets of the reference are gone after 7 days
    ref = sim.read(reference_key("m1", "v1"))
    assert ref["frozen"] and ref["start"] == T0 + 5 * HOUR
    assert sim.read(keys.bucket("m1", "v1", "h", ref["start"])) is None
    assert refresh_reference(sim.read, "m1", "v1", sim.clock, CFG) is None
    assert ref["agg"]["lab"] == ref["agg"]["n"]  # every label had settled before freezing
    signals = staleness_inputs(sim.read, "m1", sim.clock, CFG)
    assert signals is not None and signals.reference == ref["agg"]


def test_refresh_is_none_when_nothing_changed_and_load_falls_back_to_buckets() -> None:
    sim = run(1.5)
    stored = sim.read(reference_key("m1", "v1"))
    assert refresh_reference(sim.read, "m1", "v1", sim.clock, CFG) is None
    del sim.state[reference_key("m1", "v1")]
    assert load_reference(sim.read, "m1", "v1", sim.clock, CFG) == stored


def test_current_version_serves_most_predictions() -> None:
    state: dict[bytes, object] = {}
    for version, n in (("v1", 5), ("v2", 7), ("v3", 7)):
        agg: dict[str, object] = {}
        for _ in range(n):
            aggregates.add_prediction(agg, "binary", 0.5)
        state[keys.bucket("m", version, "m", T0)] = agg
    hour = parse_windows("1h")[0]
    assert current_version(state.get, "m", ["v1", "v2", "v3"], hour, T0) == "v3"
    assert current_version(state.get, "m", ["v3", "v2", "v1"], hour, T0) == "v2"


def test_entry_points_store_references_and_judge_at_the_clock() -> None:
    sim = run(2.5)
    del sim.state[reference_key("m1", "v1")]
    stored = references_to_store(sim.read, "m1", CFG)
    assert [k for k, _ in stored] == [reference_key("m1", "v1")] and stored[0][1]["frozen"]
    judged = score_model(sim.read, "m1", CFG)
    assert judged is not None
    version, verdict = judged
    assert version == "v1" and verdict.event_time_ms == sim.clock
    assert score_model(sim.read, "unknown", CFG) is None
