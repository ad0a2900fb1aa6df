"""`/health`'s verdict: 503 only when the worker will not get better by itself (records waiting
and no progress, or applied records left without a checkpoint); recovering and a failing sink are
200. The clock moves; the thresholds are the settings' defaults."""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from streams.health import Verdict, degraded_reasons, judge

STALL_S = float(Settings.model_fields["health_stall_s"].default)  # 60 s
MAX_CHECKPOINT_AGE_S = float(Settings.model_fields["health_max_checkpoint_age_s"].default)  # 120 s
T0 = 50_000.0  # a monotonic clock reading


@dataclass
class Proc:
    progressed_at: float = T0
    checkpointed_at: float = T0
    dirty_since: float | None = None


def verdict(
    *,
    now: float,
    processors: list[Proc],
    waiting: bool = False,
    recovering: bool = False,
    degraded: tuple[str, ...] = (),
) -> Verdict:
    return judge(
        now=now,
        recovering=recovering,
        processors=[(processor, waiting) for processor in processors],
        stall_s=STALL_S,
        max_checkpoint_age_s=MAX_CHECKPOINT_AGE_S,
        degraded=degraded,
    )


def test_the_defaults_are_the_ones_these_tests_move_the_clock_past() -> None:
    assert (STALL_S, MAX_CHECKPOINT_AGE_S) == (60.0, 120.0)


def test_an_idle_worker_is_healthy_however_old_its_progress() -> None:
    for idle_s in (0.0, STALL_S + 1, MAX_CHECKPOINT_AGE_S + 1, 7 * 86_400.0):
        v = verdict(now=T0 + idle_s, processors=[Proc(), Proc()], waiting=False)
        assert v == Verdict("ok")
        assert v.http_status == 200


def test_records_waiting_are_fine_while_progress_is_recent() -> None:
    proc = Proc()
    assert verdict(now=T0 + STALL_S - 1, processors=[proc], waiting=True) == Verdict("ok")


def test_records_waiting_and_no_progress_for_stall_s_is_stalled() -> None:
    proc = Proc()
    v = verdict(now=T0 + STALL_S + 5, processors=[proc], waiting=True)
    assert v.status == "stalled"
    assert v.http_status == 503
    assert v.reasons == ("records waiting and no progress for 65 s",)


def test_progress_moves_the_stall_clock() -> None:
    proc = Proc()
    proc.progressed_at = proc.checkpointed_at = T0 + 50  # a checkpoint completed
    assert verdict(now=T0 + STALL_S + 5, processors=[proc], waiting=True).status == "ok"
    assert verdict(now=T0 + 50 + STALL_S + 5, processors=[proc], waiting=True).status == "stalled"


def test_applied_records_left_without_a_checkpoint_past_the_max_age_is_stalled() -> None:
    # records keep being applied (progress is recent) but no checkpoint completes
    proc = Proc(dirty_since=T0 + 1)
    now = T0 + MAX_CHECKPOINT_AGE_S + 10
    proc.progressed_at = now - 1

    v = verdict(now=now, processors=[proc], waiting=False)
    assert v.status == "stalled"
    assert v.http_status == 503
    assert v.reasons == ("applied records not checkpointed for 129 s",)  # since dirty_since


def test_applied_records_checkpointed_within_the_max_age_are_fine() -> None:
    proc = Proc(dirty_since=T0 + 1)
    proc.progressed_at = T0 + MAX_CHECKPOINT_AGE_S - 5
    assert verdict(now=T0 + MAX_CHECKPOINT_AGE_S - 5, processors=[proc]) == Verdict("ok")


def test_an_old_checkpoint_with_nothing_applied_since_is_fine() -> None:
    proc = Proc(dirty_since=None)
    assert verdict(now=T0 + 10 * MAX_CHECKPOINT_AGE_S, processors=[proc]) == Verdict("ok")


def test_one_stalled_processor_is_enough_and_every_reason_is_given() -> None:
    fine = Proc(progressed_at=T0 + 200, checkpointed_at=T0 + 200)
    stuck = Proc(dirty_since=T0)  # applied at T0, then nothing: no progress, no checkpoint
    v = verdict(now=T0 + 200, processors=[fine, stuck], waiting=True)
    assert v.status == "stalled" and v.http_status == 503
    assert v.reasons == (
        "records waiting and no progress for 200 s",
        "applied records not checkpointed for 200 s",
    )


def test_recovering_is_200_whatever_else_holds() -> None:
    stuck = Proc(dirty_since=T0)
    v = verdict(
        now=T0 + 1_000,
        processors=[stuck],
        waiting=True,
        recovering=True,
        degraded=("redis unavailable",),
    )
    assert v.status == "recovering"
    assert v.http_status == 200
    assert v.reasons


def test_a_failing_sink_is_degraded_not_down() -> None:
    v = verdict(now=T0 + 1, processors=[Proc()], waiting=True, degraded=("redis unavailable",))
    assert v.status == "degraded"
    assert v.http_status == 200
    assert v.reasons == ("redis unavailable",)


def test_stalled_beats_degraded() -> None:
    v = verdict(
        now=T0 + STALL_S + 1,
        processors=[Proc()],
        waiting=True,
        degraded=("s3 unavailable",),
    )
    assert v.status == "stalled"
    assert v.http_status == 503
    assert any("no progress" in r for r in v.reasons)


def test_degraded_reasons_name_the_failing_sinks() -> None:
    checks = [("redis", lambda: True), ("s3", lambda: False), ("pg", lambda: True)]
    reasons = degraded_reasons(checks)
    assert reasons == ["redis unavailable", "pg unavailable"]
    assert verdict(now=T0, processors=[Proc()], degraded=tuple(reasons)) == Verdict(
        "degraded", ("redis unavailable", "pg unavailable")
    )
    assert degraded_reasons([("s3", lambda: False)]) == []


def test_every_status_has_its_http_status() -> None:
    assert {s: Verdict(s).http_status for s in ("ok", "recovering", "degraded", "stalled")} == {
        "ok": 200,
        "recovering": 200,
        "degraded": 200,
        "stalled": 503,
    }


def test_a_rebalance_that_does_not_end_is_a_stall_but_restoring_state_is_not() -> None:
    def judged(age: float, restoring: bool = False) -> Verdict:
        return judge(
            now=T0,
            recovering=True,
            rebalance_age=age,
            restoring=restoring,
            processors=[],
            stall_s=STALL_S,
            max_checkpoint_age_s=MAX_CHECKPOINT_AGE_S,
        )

    assert judged(STALL_S - 1).status == "recovering"
    assert judged(STALL_S + 5) == Verdict("stalled", ("rebalance unfinished for 65 s",))
    assert judged(STALL_S + 5).http_status == 503
    assert judged(10 * STALL_S, restoring=True) == Verdict("recovering", ("restoring state",))
