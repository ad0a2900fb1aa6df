"""The DLQ replay of one request: parked after RUNWAY_RETRAIN_MAX_REPLAYS failed replays, the
next request then delivered. The breaker's clock is a number the fake sleep moves: no waiting."""

from __future__ import annotations

from collections.abc import Callable

from retrain.breaker import BreakerConfig, CircuitBreaker, State
from retrain.dispatch import Answer, Dispatcher, Outcome, RetryPolicy, StartCall, Unreachable
from retrain.messages import RetrainRequest
from retrain.replay import replay

SEED = BreakerConfig()  # 5 failures open it, 60 s to half-open, 3 trials close it, 1 at a time


def request(model: str) -> RetrainRequest:
    return RetrainRequest(
        request_id=f"r-{model}", model_id=model, model_version="1", episode=1, score=0.9,
        reason="stale",
    )  # fmt: skip


class Clock:
    """The breaker's clock; `sleep` moves it (and may run a hook first)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[], None] = lambda: None

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.on_sleep()
        self.sleeps.append(seconds)
        self.now += seconds


class Orchestrator:
    """Answers 503 for poisoned models (or the first `fail_first` calls), 200 otherwise."""

    def __init__(self, poison: frozenset[str] = frozenset(), fail_first: int = 0) -> None:
        self.poison = poison
        self.fail_first = fail_first
        self.calls: list[str] = []

    async def __call__(self, req: RetrainRequest) -> Answer:
        self.calls.append(req.model_id)
        if req.model_id in self.poison or len(self.calls) <= self.fail_first:
            return Answer(503, "no")
        return Answer(200, '{"status": "CREATED"}')


def rig(
    orchestrator: StartCall, config: BreakerConfig = SEED
) -> tuple[Dispatcher, CircuitBreaker, Clock]:
    clock = Clock()
    breaker = CircuitBreaker(config, clock)
    top = lambda lo, hi: hi  # noqa: E731 - the jitter's upper bound, to know the waits exactly
    d = Dispatcher(breaker, orchestrator, RetryPolicy(), top, clock.sleep)
    return d, breaker, clock


async def test_a_poisoned_request_is_parked_after_n_replays_and_the_next_is_delivered() -> None:
    orchestrator = Orchestrator(poison=frozenset({"poison"}))
    d, breaker, clock = rig(orchestrator)
    first = await d.deliver(request("poison"))  # the agent's own try: 5 calls, the breaker opens
    assert (first.fate, clock.sleeps, clock.now, breaker.state) == (
        "dead-lettered", [1.0, 2.0, 4.0, 8.0], 15.0, State.OPEN,
    )  # fmt: skip
    clock.sleeps.clear()

    outcomes: list[Outcome] = []
    parked = await replay(
        request("poison"), d, max_replays=3, poll_s=0.5, sleep=clock.sleep,
        observe=outcomes.append,
    )  # fmt: skip
    # each replay waits out the breaker (60 s), is the half-open trial, fails, reopens it
    assert (parked.parked, parked.failed_replays) == (True, 3)
    assert clock.sleeps == [60.0, 60.0, 60.0] and clock.now == 15.0 + 180.0
    assert [o.attempts for o in outcomes] == [1, 1, 1]
    assert parked.outcome.detail == "circuit opened after 1 attempts: HTTP 503: no"
    assert parked.outcome.failure == "http_503"
    assert orchestrator.calls == ["poison"] * (5 + 3)

    served = await replay(request("next"), d, max_replays=3, poll_s=0.5, sleep=clock.sleep)
    assert (served.parked, served.outcome.fate, served.failed_replays) == (False, "started", 0)
    assert orchestrator.calls[-1] == "next" and len(orchestrator.calls) == 9
    assert clock.now == 195.0 + 60.0  # one more breaker cycle, then its trial succeeded


async def test_fewer_failed_replays_than_the_limit_then_started() -> None:
    orchestrator = Orchestrator(fail_first=5 + 2)  # the first try and two trials fail
    d, _, clock = rig(orchestrator)
    await d.deliver(request("m"))
    done = await replay(request("m"), d, max_replays=3, poll_s=0.5, sleep=clock.sleep)
    assert (done.parked, done.outcome.fate, done.failed_replays) == (False, "started", 2)
    assert len(orchestrator.calls) == 8 and clock.now == 15.0 + 3 * 60.0


async def test_a_refusal_by_the_breaker_is_not_a_failed_replay() -> None:
    orchestrator = Orchestrator(poison=frozenset({"poison"}))
    d, breaker, clock = rig(orchestrator)
    await d.deliver(request("poison"))  # opens the breaker at 15 s
    clock.now += 60.0  # half-open
    clock.sleeps.clear()
    other = breaker.acquire()  # another request holds the one trial slot
    assert other is not None and other.trial

    def other_trial_succeeds() -> None:
        breaker.success(other)

    clock.on_sleep = other_trial_succeeds
    done = await replay(request("poison"), d, max_replays=1, poll_s=0.5, sleep=clock.sleep)
    # refused once (no call: polled), then its own trial failed: one failed replay, parked
    assert (done.parked, done.failed_replays, clock.sleeps) == (True, 1, [0.5])
    assert orchestrator.calls == ["poison"] * 6


async def test_replays_with_the_breaker_closed_count_whole_retry_rounds() -> None:
    calls = 0

    async def unreachable(req: RetrainRequest) -> Answer:
        nonlocal calls
        calls += 1
        raise Unreachable("connection refused")

    d, breaker, clock = rig(unreachable, BreakerConfig(failure_threshold=100))
    done = await replay(request("m"), d, max_replays=2, poll_s=0.5, sleep=clock.sleep)
    assert (done.parked, done.failed_replays, calls) == (True, 2, 10)
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 0.5, 1.0, 2.0, 4.0, 8.0]  # backoff, poll, backoff
    assert done.outcome.detail == "retries exhausted after 5 attempts: connection refused"
    assert (done.outcome.failure, breaker.state) == ("unreachable", State.CLOSED)
