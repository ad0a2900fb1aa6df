"""The breaker's transitions with the seed's settings and a moved clock."""

from __future__ import annotations

import asyncio

from retrain.breaker import BreakerConfig, CircuitBreaker, State, Transition
from retrain.dispatch import Answer, CircuitOpen, guarded
from retrain.messages import RetrainRequest


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[CircuitBreaker, Clock, list[Transition]]:
    clock = Clock()
    breaker = CircuitBreaker(BreakerConfig(), clock)
    seen: list[Transition] = []
    breaker.subscribe(seen.append)
    return breaker, clock, seen


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        permit = breaker.acquire()
        assert permit is not None
        breaker.failure(permit, "boom")


def succeed(breaker: CircuitBreaker) -> None:
    permit = breaker.acquire()
    assert permit is not None
    breaker.success(permit)


def test_opens_after_five_consecutive_failures_and_fails_fast() -> None:
    breaker, _, seen = make()
    fail(breaker, 4)
    assert breaker.state is State.CLOSED
    fail(breaker, 1)
    assert breaker.state is State.OPEN
    assert breaker.acquire() is None
    assert [(t.before, t.after) for t in seen] == [(State.CLOSED, State.OPEN)]
    assert breaker.opened_count == 1


def test_a_success_resets_the_count() -> None:
    breaker, _, _ = make()
    fail(breaker, 4)
    succeed(breaker)
    fail(breaker, 4)
    assert breaker.state is State.CLOSED
    fail(breaker, 1)
    assert breaker.state is State.OPEN


def test_half_open_after_sixty_seconds() -> None:
    breaker, clock, _ = make()
    fail(breaker, 5)
    clock.now += 59.999
    assert breaker.state is State.OPEN
    assert round(breaker.seconds_until_half_open(), 3) == 0.001
    clock.now += 0.001
    assert breaker.state is State.HALF_OPEN
    assert breaker.seconds_until_half_open() == 0.0


def test_one_trial_at_a_time_and_three_successes_close() -> None:
    breaker, clock, seen = make()
    fail(breaker, 5)
    clock.now += 60
    for trial in range(3):
        permit = breaker.acquire()
        assert permit is not None and permit.trial
        assert breaker.acquire() is None  # the slot is taken while the trial runs
        breaker.success(permit)
        expected = State.CLOSED if trial == 2 else State.HALF_OPEN
        assert breaker.state is expected
    assert [t.after for t in seen] == [State.OPEN, State.HALF_OPEN, State.CLOSED]
    fail(breaker, 4)  # the count starts again from zero
    assert breaker.state is State.CLOSED


def test_a_failed_trial_reopens_for_another_reset_timeout() -> None:
    breaker, clock, seen = make()
    fail(breaker, 5)
    clock.now += 60
    succeed(breaker)
    succeed(breaker)
    permit = breaker.acquire()
    assert permit is not None
    breaker.failure(permit, "still down")
    assert breaker.state is State.OPEN
    assert breaker.opened_count == 2
    clock.now += 59
    assert breaker.acquire() is None
    clock.now += 1
    assert breaker.state is State.HALF_OPEN
    assert [t.after for t in seen] == [State.OPEN, State.HALF_OPEN, State.OPEN, State.HALF_OPEN]


def test_late_answers_from_before_a_transition_change_nothing() -> None:
    breaker, clock, _ = make()
    early = breaker.acquire()
    assert early is not None
    fail(breaker, 5)
    breaker.success(early)  # answered after the breaker opened
    assert breaker.state is State.OPEN
    clock.now += 60
    trial = breaker.acquire()
    assert trial is not None
    breaker.failure(early, "late")  # a pre-open failure does not reopen the half-open breaker
    assert breaker.state is State.HALF_OPEN


def test_a_cancelled_trial_gives_its_slot_back() -> None:
    breaker, clock, _ = make()
    fail(breaker, 5)
    clock.now += 60
    permit = breaker.acquire()
    assert permit is not None
    breaker.release(permit)
    assert breaker.acquire() is not None


REQUEST = RetrainRequest(
    request_id="r", model_id="m", model_version="1", episode=1, score=0.9, reason="stale"
)


async def test_fifty_concurrent_callers_in_half_open_one_reaches_the_orchestrator() -> None:
    breaker, clock, _ = make()
    fail(breaker, 5)
    clock.now += 60
    reached: list[str] = []
    release = asyncio.Event()

    async def orchestrator(request: RetrainRequest) -> Answer:
        reached.append(request.request_id)
        await release.wait()
        return Answer(200, "{}")

    async def caller() -> str:
        try:
            await guarded(breaker, orchestrator, REQUEST)
            return "called"
        except CircuitOpen:
            return "refused"

    tasks = [asyncio.create_task(caller()) for _ in range(50)]
    await asyncio.sleep(0)  # every caller has run up to its first await
    release.set()
    results = await asyncio.gather(*tasks)
    assert len(reached) == 1
    assert results.count("called") == 1 and results.count("refused") == 49
    assert breaker.state is State.HALF_OPEN  # one success of the three needed
