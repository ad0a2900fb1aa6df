"""Scenarios on simulated streams with a moved clock (README "Staleness", the bounds).

State is built by `sim.Sim` with the join's own aggregate functions and key layout; the verdict
is taken from `staleness_inputs` + `judge` at the simulated event time, as the worker does.
Traffic: 600 predictions/h of a binary model with AUC ~0.9, labels ~10 min late (exponential)
unless said otherwise; default thresholds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from staleness.config import DAY_MS, StalenessConfig
from staleness.inputs import VersionFacts, staleness_inputs
from staleness.verdict import Verdict, judge
from tests.unit.staleness.sim import MINUTE, T0, Sim, binary_draw, exp_delay

HOUR = 60 * MINUTE
CFG = StalenessConfig()
RATE = 600


def verdicts(
    sim: Sim, facts: VersionFacts | None = None
) -> tuple[list[int], list[Verdict], Callable[[int], None]]:
    """Event times, the verdicts taken at them, and the step hook that takes them."""
    times: list[int] = []
    out: list[Verdict] = []

    def step(t: int) -> None:
        signals = staleness_inputs(sim.read, sim.model_id, t, CFG, facts=facts)
        assert signals is not None
        times.append(t)
        out.append(judge(signals, CFG))

    return times, out, step


def test_stationary_model_stays_fresh_for_30_days() -> None:
    """No false alarm in 720 hourly verdicts. The registry declares a 90-day maximum age: with
    the default 30 days, age alone would rightly turn the model WARNING at day 24 and STALE at
    day 30 (the age scenario below shows that)."""
    sim = Sim("m1", "v1", "binary", CFG)
    times, out, step = verdicts(sim, VersionFacts(max_age_ms=90 * DAY_MS))
    sim.run(T0, T0 + 30 * DAY_MS, RATE, binary_draw(), exp_delay(10 * MINUTE), step)
    assert len(out) == 30 * 24
    assert Counter(v.state for v in out) == {"FRESH": 720}
    judged = out[24:]  # from the reference window's end on, every signal is there
    assert all(v.basis == ["performance", "drift", "age"] for v in judged)
    assert max(v.score for v in judged) < CFG.warning_score
    assert max(v.metrics["psi"] for v in judged) < CFG.psi_moderate


def test_accuracy_drop_turns_stale_within_an_hour_of_its_labels() -> None:
    """From `drop` on, 60 % of labels are random (the scores' distribution does not move).
    Bound: STALE within 60 min of event time after the drop (the first labels showing it
    arrive minutes after it), never before it; verdicts every 10 minutes."""
    sim = Sim("m1", "v1", "binary", CFG)
    times, out, step = verdicts(sim)
    drop = T0 + 3 * DAY_MS
    sim.run(T0, drop, RATE, binary_draw(), exp_delay(10 * MINUTE), step, 10 * MINUTE)
    before = len(out)
    sim.run(drop, drop + 4 * HOUR, RATE, binary_draw(noise=0.6), exp_delay(10 * MINUTE),
            step, 10 * MINUTE)  # fmt: skip
    assert {v.state for v in out[:before]} == {"FRESH"}
    first_stale = next(t for t, v in zip(times, out, strict=True) if v.state == "STALE")
    assert drop < first_stale <= drop + 60 * MINUTE
    v = out[times.index(first_stale)]
    assert v.basis == ["performance", "drift", "age"]
    assert v.reason.startswith("STALE: ROC AUC") and v.metrics["psi_band"] == "stable"
    assert all(v.state == "STALE" for v in out[times.index(first_stale) :])


def test_score_shift_without_labels_gives_a_drift_only_verdict() -> None:
    """Labels come 3 days late (none in the recent windows); the registry declares the
    baseline. From day 2, half of the scores move to Beta(8, 1)."""
    sim = Sim("m1", "v1", "binary", CFG)
    facts = VersionFacts(baseline={"roc_auc": 0.9})
    times, out, step = verdicts(sim, facts)
    shift = T0 + 2 * DAY_MS
    late = exp_delay(10 * MINUTE)

    def delay(rng):  # type: ignore[no-untyped-def]
        return 3 * DAY_MS + late(rng)

    sim.run(T0, shift, RATE, binary_draw(), delay, step)
    before = len(out)
    sim.run(shift, shift + 6 * HOUR, RATE, binary_draw(shift=0.5), delay, step)
    assert {v.state for v in out[24:before]} == {"FRESH"}
    assert all(v.basis == ["drift", "age"] and v.ground_truth_delayed for v in out[24:])
    last = out[-1]
    assert last.state == "STALE" and last.metrics["psi_band"] == "significant"
    assert "ground truth delayed, so judged on drift and age only" in last.reason
    first_stale = next(t for t, v in zip(times, out, strict=True) if v.state == "STALE")
    assert first_stale <= shift + HOUR  # the 1h window is all shifted traffic after an hour


def test_old_but_accurate_model_is_flagged_on_age_alone() -> None:
    """Trained 40 days ago, default maximum age 30 days, performing as on its first day."""
    sim = Sim("m1", "v1", "binary", CFG)
    times, out, step = verdicts(sim, VersionFacts(trained_at_ms=T0 - 40 * DAY_MS))
    sim.run(T0, T0 + 3 * DAY_MS, RATE, binary_draw(), exp_delay(10 * MINUTE), step)
    last = out[-1]
    assert last.state == "STALE" and last.basis == ["performance", "drift", "age"]
    assert last.metrics["score_age"] == 1.0
    assert last.metrics["score_performance"] < CFG.warning_score
    assert last.metrics["score_drift"] < CFG.warning_score
    assert last.reason.startswith("STALE: 43.0 days since trained (max 30)")


def test_feature_shift_without_labels_is_drift_on_that_feature() -> None:
    """Scores keep their distribution; from day 2 the feature `x0` moves from N(0, 1) to N(2, 1)
    while `x1` stays. Labels come 3 days late, so the verdict rests on drift and age."""
    sim = Sim("m1", "v1", "binary", CFG)
    times, out, step = verdicts(sim, VersionFacts(baseline={"roc_auc": 0.9}))
    shift = T0 + 2 * DAY_MS

    def delay(rng):  # type: ignore[no-untyped-def]
        return 3 * DAY_MS + 10 * MINUTE

    def features(rng, ts):  # type: ignore[no-untyped-def]
        moved = 2.0 if ts >= shift else 0.0
        return {"x0": rng.gauss(moved, 1.0), "x1": rng.gauss(0.0, 1.0), "region": "eu"}

    sim.run(T0, shift + 6 * HOUR, RATE, binary_draw(), delay, step, features=features)
    before = times.index(shift)
    assert {v.state for v in out[24 : before + 1]} == {"FRESH"}
    last = out[-1]
    assert last.state == "STALE" and last.basis == ["drift", "age"]
    assert last.metrics["psi_window"] == "feature:x0"
    assert last.metrics["feature_psi.x0"] > CFG.psi_significant
    assert last.metrics["feature_psi.x1"] < CFG.psi_moderate
    assert last.metrics["feature_psi.region"] == 0.0
    assert last.metrics["psi"] == last.metrics["feature_psi.x0"]
