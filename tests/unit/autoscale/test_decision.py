"""The scaling decision with the seed's numbers (4..32 workers, up > 300 s, down < 30 s,
300 s stabilisation) and a moved clock."""

from __future__ import annotations

from autoscale.decision import Decision, Memory, Observation, Policy, decide

SEED = Policy()  # min 4, max 32, up 300 s, down 30 s, window 300 s, cooldown 120 s


def run(
    policy: Policy,
    lags: list[float],
    workers: int,
    partitions: int = 64,
    step_s: float = 10.0,
    memory: Memory | None = None,
) -> list[Decision]:
    """Feed one lag sample every `step_s` seconds, applying each decision's size."""
    memory = memory or Memory()
    decisions = []
    for i, lag in enumerate(lags):
        d = decide(policy, Observation(workers, lag, partitions), memory, now_s=i * step_s)
        decisions.append(d)
        memory, workers = d.memory, d.workers
    return decisions


def test_seed_defaults() -> None:
    assert (SEED.min_workers, SEED.max_workers) == (4, 32)
    assert (SEED.scale_up_lag_s, SEED.scale_down_lag_s, SEED.stabilization_s) == (300, 30, 300)


def test_scale_up_on_a_step_is_proportional_to_the_lag_over_the_bound() -> None:
    d = decide(SEED, Observation(4, 750.0, 64), Memory(), now_s=1000.0)
    assert (d.workers, d.action) == (10, "up")  # ceil(4 x 750 / 300) = 10
    assert d.memory == Memory(last_change_s=1000.0, calm_since_s=None)
    assert "ceil(4 x 750.0 / 300) = 10" in d.reason


def test_scale_up_just_over_the_bound_adds_at_least_one() -> None:
    d = decide(SEED, Observation(8, 301.0, 64), Memory(), now_s=0.0)
    assert (d.workers, d.action) == (9, "up")  # ceil(8 x 301 / 300) = 9


def test_a_step_of_lag_scales_up_once_then_cools_down_then_again() -> None:
    lags = [10.0, 10.0, 600.0] + [600.0] * 12 + [600.0]
    decisions = run(SEED, lags, workers=4)
    sizes = [d.workers for d in decisions]
    # t=20: 4 -> 8; cooldown 120 s: held until t=140, then 8 -> 16
    assert sizes[:3] == [4, 4, 8]
    assert sizes[3:14] == [8] * 11
    assert sizes[14] == 16
    assert "cooling down" in decisions[5].reason


def test_partition_cap_with_the_seed_16_partitions() -> None:
    d = decide(SEED, Observation(12, 900.0, 16), Memory(), now_s=0.0)
    assert (d.workers, d.action, d.capped) == (16, "up", True)
    assert "capped at 16 workers: the input topics have 16 partitions (max_workers 32)" in d.reason
    held = decide(SEED, Observation(16, 900.0, 16), d.memory, now_s=500.0)
    assert (held.workers, held.action, held.capped) == (16, "hold", True)
    assert "capped at 16 workers" in held.reason


def test_more_workers_than_partitions_go_down_to_the_cap() -> None:
    d = decide(SEED, Observation(32, 0.0, 16), Memory(), now_s=0.0)
    assert (d.workers, d.action, d.capped) == (16, "down", True)


def test_below_the_minimum_goes_straight_to_it() -> None:
    d = decide(SEED, Observation(1, 0.0, 16), Memory(last_change_s=0.0), now_s=1.0)
    assert (d.workers, d.action) == (4, "up")


def test_scale_down_only_after_the_stabilisation_window() -> None:
    # lag drops under 30 s at t=0 and stays there; last change long ago
    memory = Memory(last_change_s=-1000.0)
    decisions = run(SEED, [5.0] * 32, workers=10, memory=memory)
    sizes = [d.workers for d in decisions]
    assert sizes[:30] == [10] * 30  # t = 0..290: still inside the 300 s window
    assert sizes[30] == 9  # t = 300: one step down
    assert decisions[30].action == "down"
    assert sizes[31] == 9  # cooldown after the change


def test_scale_down_is_one_step_per_cooldown_and_stops_at_the_minimum() -> None:
    memory = Memory(last_change_s=-1000.0)
    decisions = run(SEED, [0.0] * 100, workers=7, memory=memory)
    downs = [(i * 10, d.workers) for i, d in enumerate(decisions) if d.action == "down"]
    # window 300 s, then every 120 s cooldown: 7 -> 6 at 300, -> 5 at 420, -> 4 at 540
    assert downs == [(300, 6), (420, 5), (540, 4)]
    assert decisions[-1].workers == 4
    assert "at the minimum of 4" in decisions[-1].reason


def test_no_flapping_on_a_lag_oscillating_around_the_low_bound() -> None:
    lags = [25.0, 35.0] * 60  # 20 minutes
    decisions = run(SEED, lags, workers=8, memory=Memory(last_change_s=-1000.0))
    assert {d.workers for d in decisions} == {8}


def test_no_flapping_on_a_lag_oscillating_around_the_high_bound() -> None:
    lags = [310.0, 290.0] * 60  # 20 minutes
    decisions = run(SEED, lags, workers=4)
    changes = [(i * 10, d.workers) for i, d in enumerate(decisions) if d.action != "hold"]
    # up when over, one step per cooldown; never down (290 s is far above the 30 s low bound)
    assert all(d.action != "down" for d in decisions)
    assert changes[0] == (0, 5)  # ceil(4 x 310 / 300) = 5
    times = [t for t, _ in changes]
    assert all(b - a >= SEED.cooldown_s for a, b in zip(times, times[1:], strict=False))


def test_lag_between_the_bounds_holds() -> None:
    d = decide(SEED, Observation(6, 100.0, 16), Memory(), now_s=0.0)
    assert (d.workers, d.action) == (6, "hold")
    assert d.reason == "lag 100.0s within [30s, 300s]"


def test_draining_fast_enough_holds_instead_of_scaling_up() -> None:
    seen = Observation(
        8, 400.0, 64, offset_lag=50_000, consumption_rate=2_000.0, production_rate=1_000.0
    )
    d = decide(SEED, seen, Memory(), now_s=0.0)
    # (2000 - 1000) records/s net: caught up in 50 s < the 120 s cooldown
    assert (d.workers, d.action) == (8, "hold")
    assert "caught up in ~50s" in d.reason
    slow = Observation(
        8, 400.0, 64, offset_lag=500_000, consumption_rate=2_000.0, production_rate=1_000.0
    )
    assert decide(SEED, slow, Memory(), now_s=0.0).workers == 11  # ceil(8 x 400 / 300)


def test_max_workers_caps_when_partitions_are_plenty() -> None:
    d = decide(SEED, Observation(30, 3000.0, 64), Memory(), now_s=0.0)
    assert (d.workers, d.capped) == (32, False)
    assert d.reason.endswith("; max_workers 32")
