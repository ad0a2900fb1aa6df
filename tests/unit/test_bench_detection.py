"""`runway bench-detection`'s pure parts on hand-made timelines, and a small in-process run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from staleness.config import StalenessConfig
from streams.backtest import Event, run_backtest
from tables import keys
from tools.bench_detection import (
    CHANGE_DAY,
    DAY_MS,
    HOUR_MS,
    SCENARIOS,
    T0,
    Hourly,
    InProcess,
    MemoryState,
    Scenario,
    evidently_summary,
    facts_document,
    hourly_events,
    markdown,
    model_id,
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


# -- the in-process path: the join's rules and the worker's hour verdicts ----------------------


def test_memory_state_scans_the_expiry_index_by_deadline_and_the_rest_by_key() -> None:
    state = MemoryState()
    due = [keys.expiry(t, keys.pair("m", pid)) for t, pid in ((30, "c"), (10, "a"), (20, "b"))]
    for key in due:
        state.put_absent(key, 1)
    state.set(keys.pair("m", "a"), {"s": "P"})  # pairs are never scanned
    state.set(keys.model("m"), {"clock": 5})
    state.set(keys.model("k"), {"clock": 6})
    state.delete_stored(due[2])  # (20, b) leaves; put back, it is one entry, not two
    state.put_absent(due[2], 1)
    state.delete(due[0])  # (30, c) leaves for good
    got = state.scan(keys.EXPIRY, keys.expiry_bound(25))
    assert got == [(due[1], 1), (due[2], 1)]
    assert state.scan(keys.EXPIRY, keys.expiry_bound(25)) == got  # a scan changes nothing
    state.delete(due[1])
    assert state.scan(keys.EXPIRY, keys.expiry_bound(99)) == [(due[2], 1)]
    assert state.scan(keys.MODEL, keys.MODEL_END) == [
        (keys.model("k"), {"clock": 6}),
        (keys.model("m"), {"clock": 5}),
    ]
    assert len(state) == 4


def _backtest_of(s: Scenario, level: int, tmp: Path) -> list[dict[str, Any]]:
    """The worker's join processor, checkpoints and hour verdicts (`runway backtest`) over the
    scenario's events up to its end."""

    async def source() -> AsyncIterator[tuple[int, Iterable[Event]]]:
        end = T0 + s.days * DAY_MS
        events: list[Event] = []
        for hour, preds, labels in hourly_events(s, level):
            if hour > end:
                break
            events += [("predictions", p) for p in preds] + [("outcomes", o) for o in labels]
        yield 0, events

    registry = {model_id(s): (facts_document(s), [])}
    result = asyncio.run(run_backtest(source(), Settings(), registry=registry, state_dir=tmp))
    return [v for v in result.verdicts if v["event_time"] <= T0 + s.days * DAY_MS]


@pytest.mark.parametrize(
    "name", ["drop_10pt", "score_shift_no_labels", "harder_inputs_labels_1d", "past_max_age"]
)
def test_in_process_verdicts_are_the_workers_join_and_hour_verdicts(
    name: str, tmp_path: Path
) -> None:
    """Event for event, the in-process path's hour verdicts are those of the worker's own join
    processor, RocksDB checkpoints and hour verdicts (`streams.backtest`, production label TTL
    and retention) on the same events: its in-memory state and shorter TTL change nothing."""
    s = next(sc for sc in SCENARIOS if sc.name == name)
    s = replace(s, days=min(s.days, CHANGE_DAY + 1))
    replay = InProcess(s, 1_000, CFG)
    timeline = asyncio.run(replay.run())
    expected = _backtest_of(s, 1_000, tmp_path)
    hours = s.days * 24 - (s.label_delay_ms is None)  # no event crosses a never-labelled end
    assert [v["event_time"] for v in expected] == [T0 + h * HOUR_MS for h in range(1, hours + 1)]

    def same(v: dict[str, Any]) -> dict[str, Any]:
        return {k: x for k, x in v.items() if k != "emitted_at"}

    assert [same(v) for v in replay.verdicts] == [same(v) for v in expected]
    assert [t.at_ms for t in timeline] == [v["event_time"] for v in expected]
    assert replay.events == sum(len(p) + len(o) for _, p, o in hourly_events(s, 1_000)
                                if _ <= T0 + s.days * DAY_MS)  # fmt: skip


def test_the_peers_daily_rows_are_the_predictions_of_each_day(tmp_path: Path) -> None:
    """Evidently's input: one CSV per day of predictions (the labels-only hour at the end
    writes none: an empty day made Evidently fail)."""
    s = next(sc for sc in SCENARIOS if sc.name == "past_max_age")  # 3 days
    run_in_process(s, 1_000, CFG, rows_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["day000.csv", "day001.csv", "day002.csv"]
    for name in files:
        lines = (tmp_path / name).read_text().splitlines()
        assert lines[0] == "score" and len(lines) == 1 + 1_000
