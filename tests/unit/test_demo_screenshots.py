"""The demo screenshots' timeline: milestones dated by the registry, earlier runs ignored."""

from __future__ import annotations

from typing import Any

from tools.demo_screenshots import Timeline

START = 1_000_000


def fleet(*rows: tuple[str, str, int | None]) -> dict[str, Any]:
    return {"models": [{"model_id": m, "state": s, "last_verdict_at": at} for m, s, at in rows]}


def retrain(*ats: int) -> list[dict[str, Any]]:
    return [{"history": [{"status": "queued", "at": at} for at in ats]}]


def test_milestones_in_order_dated_by_the_registry() -> None:
    t = Timeline("model-000", START)
    # an earlier run's STALE verdict and retrain do not count
    assert t.update(fleet(("model-000", "STALE", START - 1), ("model-001", "FRESH", None)),
                    retrain(START - 5)) == []  # fmt: skip
    assert t.update(fleet(("model-000", "FRESH", START + 10), ("model-001", "FRESH", START + 7)),
                    []) == ["first verdict"]  # fmt: skip
    assert t.update(fleet(("model-000", "WARNING", START + 40)), []) == ["WARNING"]
    assert not t.done
    assert t.update(fleet(("model-000", "STALE", START + 70)), retrain(START - 5, START + 75)) == [
        "STALE", "retrain",
    ]  # fmt: skip
    assert t.done
    assert t.seen == {"first verdict": START + 7, "WARNING": START + 40, "STALE": START + 70,
                      "retrain": START + 75}  # fmt: skip


def test_a_jump_to_stale_passes_warning_at_the_same_time() -> None:
    t = Timeline("m", START)
    assert t.update(fleet(("m", "STALE", START + 3)), []) == ["first verdict", "WARNING", "STALE"]
    assert t.seen["WARNING"] == t.seen["STALE"] == START + 3
