"""`runway bench-detection`'s pure parts on hand-made timelines, and a small in-process run."""

from __future__ import annotations

from staleness.config import StalenessConfig
from tools.bench_detection import (
    CHANGE_DAY,
    DAY_MS,
    HOUR_MS,
    T0,
    Hourly,
    Scenario,
    evidently_summary,
    markdown,
    run_in_process,
    summarize,
    targets,
)

CFG = StalenessConfig()
CHANGE = T0 + CHANGE_DAY * DAY_MS


def at(h: float) -> int:
    return int(CHANGE + h * HOUR_MS)


def test_summary_counts_false_alarms_and_delays_by_hand() -> None:
    s = Scenario("drop", kind="flip", flip=0.2, label_delay_ms=HOUR_MS)
    timeline = [
        Hourly(at(-2), "WARNING", 0.45, {"drift": 0.45, "age": 0.1}, "x"),  # false alarm
        Hourly(at(-1), "WARNING", 0.5, {"age": 0.5, "drift": 0.1}, "age only: not one"),
        Hourly(at(0), "FRESH", 0.1, {"performance": 0.39}, "at the change: before it"),
        Hourly(at(1), "FRESH", 0.2, {"performance": 0.2}, "x"),
        Hourly(at(2), "WARNING", 0.5, {"performance": 0.5, "drift": 0.41}, "x"),
        Hourly(at(3), "STALE", 0.8, {"performance": 0.8}, "the first STALE"),
        Hourly(at(4), "STALE", 0.9, {"performance": 0.9}, "x"),
    ]
    out = summarize(s, 20_000, timeline, CFG, "in_process")
    assert (out.verdicts, out.false_alarms) == (7, 1)
    assert (out.warn_delay_h, out.detect_delay_h, out.after_labels_h) == (2.0, 3.0, 2.0)
    assert out.first_signal == "performance+drift"
    assert out.first_stale_reason == "the first STALE"
    assert out.estimate_before_labels is None  # only asked of the calibrated-shift scenarios


def test_estimate_before_labels_and_targets() -> None:
    s = Scenario("harder_inputs_labels_1d", kind="harder", label_delay_ms=DAY_MS)
    timeline = [
        Hourly(at(1), "WARNING", 0.5, {"estimated_performance": 0.5}, "x"),
        Hourly(at(2), "STALE", 0.7, {"estimated_performance": 0.7}, "x"),
    ]
    harder = summarize(s, 20_000, timeline, CFG, "in_process")
    assert harder.estimate_before_labels is True
    assert harder.after_labels_h == 2 - 24
    late = summarize(s, 20_000, [Hourly(at(25), "STALE", 0.7, {"performance": 0.7}, "")], CFG, "")
    assert late.estimate_before_labels is False
    stationary = summarize(Scenario("stationary", change_day=None), 1_000, [], CFG, "in_process")
    got = targets([stationary, harder])
    assert got["stationary_no_false_alarms"] is True
    assert got["estimate_flags_before_labels"] is True
    assert got["drop_10pt_stale_within_6h"] is None  # not measured


def test_evidently_summary_by_hand() -> None:
    s = Scenario("shift", kind="upshift")
    days = [  # day d's batch ends at T0 + (d + 1) days; the change is at day CHANGE_DAY
        {"day": 1, "share": 1.0, "count": 1, "methods": ["Wasserstein distance (normed)"]},
        {"day": CHANGE_DAY - 1, "share": 0.0, "count": 0, "methods": []},
        {"day": CHANGE_DAY, "share": 0.34, "count": 1, "methods": []},
        {"day": CHANGE_DAY + 1, "share": 0.67, "count": 2, "methods": []},
    ]
    got = evidently_summary(s, days)
    assert got["false_alarms"] == 1 and got["column_false_alarms"] == 1
    assert got["detect_delay_h"] == 48.0 and got["column_detect_delay_h"] == 24.0
    assert got["methods"] == ["Wasserstein distance (normed)"]


def test_a_small_drop_run_in_process() -> None:
    """Four days at 20,000 predictions/day, a 10-point drop on day 3, labels an hour late: the
    production scorer, hourly, says STALE within 6 h of it and no sooner."""
    s = Scenario("drop_10pt", days=CHANGE_DAY + 1, kind="flip", flip=0.2)
    out = run_in_process(s, 20_000, CFG)
    assert out.verdicts == (CHANGE_DAY + 1) * 24
    assert out.false_alarms == 0
    assert out.detect_delay_h is not None and 1 <= out.detect_delay_h <= 6
    assert out.first_signal is not None and out.first_signal.startswith("performance")
    table = markdown({"scenarios": [vars(out)]})
    assert table.splitlines()[2].startswith("| drop_10pt | 20,000 | in-process | 96 | 0 |")
