"""Full-jitter bounds, Retry-After, and the retry policy around the breaker (seed values)."""

from __future__ import annotations

import random

from retrain.backoff import backoff_ceiling, full_jitter, parse_retry_after
from retrain.breaker import BreakerConfig, CircuitBreaker, State
from retrain.dispatch import Answer, Dispatcher, RetryPolicy, Unreachable
from retrain.messages import RetrainRequest


def test_ceiling_doubles_from_one_second_up_to_sixty() -> None:
    assert [backoff_ceiling(n, 1.0, 60.0) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_full_jitter_stays_within_zero_and_the_ceiling() -> None:
    rng = random.Random(7)
    for n in range(1, 12):
        top = min(60.0, 2.0 ** (n - 1))
        samples = [full_jitter(n, 1.0, 60.0, rng.uniform) for _ in range(2000)]
        assert all(0.0 <= s <= top for s in samples)
        assert min(samples) < 0.05 * top and max(samples) > 0.95 * top  # the whole range is used
    assert full_jitter(3, 1.0, 60.0, lambda lo, hi: hi) == 4.0
    assert full_jitter(3, 1.0, 60.0, lambda lo, hi: lo) == 0.0


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7", 0.0) == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", 1445412480.0) == 10.0
    assert parse_retry_after(None, 0.0) is None
    assert parse_retry_after("soon", 0.0) is None


REQUEST = RetrainRequest(
    request_id="r", model_id="m", model_version="1", episode=1, score=0.9, reason="stale"
)


class Scripted:
    """An orchestrator answering from a script (an Exception entry is raised)."""

    def __init__(self, script: list[Answer | Exception]) -> None:
        self.script = script
        self.calls = 0

    async def __call__(self, request: RetrainRequest) -> Answer:
        item = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if isinstance(item, Exception):
            raise item
        return item


def dispatcher(
    script: Scripted, config: BreakerConfig | None = None
) -> tuple[Dispatcher, list[float], CircuitBreaker]:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    breaker = CircuitBreaker(config or BreakerConfig(), lambda: 0.0)
    top = lambda lo, hi: hi  # noqa: E731 - the upper bound, to check it exactly
    return Dispatcher(breaker, script, RetryPolicy(), top, sleep), sleeps, breaker


async def test_five_attempts_with_growing_waits_then_the_breaker_opens() -> None:
    script = Scripted([Answer(503, "down")])
    d, sleeps, breaker = dispatcher(script)
    outcome = await d.deliver(REQUEST)
    assert script.calls == 5
    assert sleeps == [1.0, 2.0, 4.0, 8.0]
    assert outcome.fate == "dead-lettered"
    assert outcome.detail.startswith("circuit opened after 5 attempts: HTTP 503")
    assert breaker.state is State.OPEN


async def test_retries_exhausted_without_opening_dead_letters_too() -> None:
    script = Scripted([Unreachable("connection refused")])
    d, sleeps, _ = dispatcher(script, BreakerConfig(failure_threshold=100))
    outcome = await d.deliver(REQUEST)
    assert (script.calls, len(sleeps), outcome.fate) == (5, 4, "dead-lettered")
    assert outcome.detail.startswith("retries exhausted after 5 attempts")


async def test_stops_at_once_when_the_breaker_opens() -> None:
    script = Scripted([Answer(503, "down")])
    d, sleeps, breaker = dispatcher(script)
    for _ in range(3):  # three failures of other requests already counted
        permit = breaker.acquire()
        assert permit is not None
        breaker.failure(permit)
    outcome = await d.deliver(REQUEST)
    assert (script.calls, sleeps) == (2, [1.0])
    assert outcome.detail.startswith("circuit opened after 2 attempts")
    refused = await d.deliver(REQUEST)
    assert (script.calls, refused.fate, refused.attempts) == (2, "dead-lettered", 0)


async def test_429_honours_retry_after_then_starts() -> None:
    script = Scripted([Answer(429, "slow down", 7.0), Answer(200, '{"status": "CREATED"}')])
    d, sleeps, _ = dispatcher(script)
    outcome = await d.deliver(REQUEST)
    assert (outcome.fate, outcome.attempts, sleeps) == ("started", 2, [7.0])


async def test_client_errors_fail_at_once_with_the_answer() -> None:
    for status in (400, 401, 403, 404, 422):
        script = Scripted([Answer(status, "bad request body")])
        d, sleeps, breaker = dispatcher(script)
        outcome = await d.deliver(REQUEST)
        assert (script.calls, sleeps, outcome.fate) == (1, [], "failed")
        assert outcome.detail == f"HTTP {status}: bad request body"
        assert breaker.consecutive_failures == 0


async def test_retry_after_beyond_the_cap_waits_the_cap() -> None:
    """`429 Retry-After: 86400` holds the slot 60 s (the backoff's cap), not a day."""
    script = Scripted([Answer(429, "slow down", 86400.0), Answer(200, '{"status": "CREATED"}')])
    d, sleeps, _ = dispatcher(script)
    outcome = await d.deliver(REQUEST)
    assert (outcome.fate, outcome.attempts, sleeps) == ("started", 2, [60.0])


async def test_a_request_rate_limited_for_a_day_holds_its_slot_four_capped_waits() -> None:
    script = Scripted([Answer(429, "slow down", 86400.0)])
    d, sleeps, breaker = dispatcher(script)
    outcome = await d.deliver(REQUEST)
    assert (script.calls, sleeps) == (5, [60.0, 60.0, 60.0, 60.0])  # 240 s, then dead-lettered
    assert (outcome.fate, outcome.failure) == ("dead-lettered", "http_429")
    assert breaker.state is State.OPEN


async def test_the_cap_is_the_policy_s_and_applies_to_an_http_date() -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    a_day_later = parse_retry_after("Thu, 22 Oct 2015 07:28:00 GMT", now)
    assert a_day_later == 86400.0
    script = Scripted([Answer(503, "busy", a_day_later), Answer(200, "{}")])
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    breaker = CircuitBreaker(BreakerConfig(), lambda: 0.0)
    policy = RetryPolicy(max_attempts=5, base_s=1.0, cap_s=5.0)
    d = Dispatcher(breaker, script, policy, lambda lo, hi: hi, sleep)
    assert (await d.deliver(REQUEST)).fate == "started"
    assert sleeps == [5.0]
