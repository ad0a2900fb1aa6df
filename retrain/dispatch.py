"""One retrain request's fate: breaker, retries with full jitter, and the verdict. No I/O here:
the orchestrator call is injected (`retrain/client.py` is the real one), so are sleep and
randomness.

Retries use tenacity: its stop, wait, retry and sleep hooks express the policy exactly (stop
after N attempts *or* as soon as the breaker is open; full jitter with an injected random source,
overridden by Retry-After; only transient failures; injected sleep).

Retry-After is honoured up to the backoff's cap (`RetryPolicy.cap_s`, RUNWAY_RETRAIN_BACKOFF_MAX_S,
60 s): the wait holds one of the concurrent slots, so an orchestrator answering `429 Retry-After:
86400` must not take a slot for a day. After the capped wait the request is retried as usual, and
once its attempts are spent it is dead-lettered and replayed (and parked if it keeps failing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_any, stop_base

from retrain.backoff import full_jitter
from retrain.breaker import CircuitBreaker, State
from retrain.messages import RetrainRequest

# 429 and 503 are the orchestrator saying "later"; 502/504 are a gateway's timeouts and
# connection errors, retried like ours. 400, 401, 403, 404, 422 (and any other answer) are final.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    retry_after_s: float | None = None


class Unreachable(Exception):
    """No answer: connection refused or reset, or the call timed out."""


class CircuitOpen(Exception):
    """The breaker refused the call (open, or half-open with its trial slots taken)."""


class Transient(Exception):
    def __init__(self, reason: str, kind: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.kind = kind  # "unreachable" or "http_<status>": a metric label
        self.retry_after_s = retry_after_s


Fate = Literal["started", "failed", "dead-lettered"]
StartCall = Callable[[RetrainRequest], Awaitable[Answer]]


@dataclass(frozen=True)
class Outcome:
    fate: Fate
    detail: str
    attempts: int
    answer: Answer | None = None
    failure: str | None = None  # a dead letter's: Transient.kind, or "circuit_open"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_s: float = 1.0
    cap_s: float = 60.0


async def guarded(breaker: CircuitBreaker, call: StartCall, request: RetrainRequest) -> Answer:
    """One attempt through the breaker. An answer other than a transient one means the
    orchestrator is up and counts as a success for the breaker (a 4xx is our request's fault)."""
    permit = breaker.acquire()
    if permit is None:
        raise CircuitOpen(f"circuit {breaker.state.value}")
    try:
        answer = await call(request)
    except Unreachable as exc:
        breaker.failure(permit, str(exc))
        raise Transient(str(exc), "unreachable") from exc
    except BaseException:
        breaker.release(permit)
        raise
    if answer.status in RETRYABLE_STATUS:
        reason = f"HTTP {answer.status}: {answer.body[:200]}"
        breaker.failure(permit, reason)
        raise Transient(reason, f"http_{answer.status}", answer.retry_after_s)
    if answer.status >= 500:
        breaker.failure(permit, f"HTTP {answer.status}")
    else:
        breaker.success(permit)
    return answer


class stop_when_open(stop_base):  # noqa: N801 - named like tenacity's own stops
    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.breaker.state is State.OPEN


class Dispatcher:
    def __init__(
        self,
        breaker: CircuitBreaker,
        call: StartCall,
        policy: RetryPolicy,
        uniform: Callable[[float, float], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.breaker = breaker
        self.call = call
        self.policy = policy
        self.uniform = uniform
        self.sleep = sleep
        self.attempts = 0  # every call that reached the orchestrator

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Transient) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, self.policy.cap_s)
        return full_jitter(
            state.attempt_number, self.policy.base_s, self.policy.cap_s, self.uniform
        )

    async def deliver(self, request: RetrainRequest) -> Outcome:
        attempts = 0  # calls that reached the orchestrator (a refusal by the breaker is none)

        async def counted(request: RetrainRequest) -> Answer:
            nonlocal attempts
            attempts += 1
            return await self.call(request)

        retrying = AsyncRetrying(
            stop=stop_any(
                stop_after_attempt(self.policy.max_attempts), stop_when_open(self.breaker)
            ),
            wait=self._wait,
            retry=retry_if_exception_type(Transient),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            answer: Answer = await retrying(guarded, self.breaker, counted, request)
        except CircuitOpen as exc:
            return self._count(Outcome("dead-lettered", str(exc), attempts, None, "circuit_open"))
        except Transient as exc:
            why = "circuit opened" if self.breaker.state is State.OPEN else "retries exhausted"
            detail = f"{why} after {attempts} attempts: {exc}"
            return self._count(Outcome("dead-lettered", detail, attempts, None, exc.kind))
        if 200 <= answer.status < 300:
            return self._count(Outcome("started", answer.body[:500], attempts, answer))
        detail = f"HTTP {answer.status}: {answer.body[:500]}"
        return self._count(Outcome("failed", detail, attempts, answer))

    def _count(self, outcome: Outcome) -> Outcome:
        self.attempts += outcome.attempts
        return outcome
