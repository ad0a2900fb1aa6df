"""The circuit breaker in front of the orchestrator: a pure state machine with an injected clock.

The seed's CIRCUIT_BREAKER_CONFIG, made consistent: every failed *attempt* counts (retries
included) and a success resets the count; after `failure_threshold` consecutive failures it opens
and fails fast; after `reset_timeout_s` it is half-open and admits at most `half_open_requests`
trials at a time; `success_threshold` consecutive successful trials close it, one failed trial
reopens it. Callers take a `Permit` before calling and report its result; a permit carries the
breaker's generation, so a late answer to a call admitted before a transition changes nothing.
Being synchronous, `acquire` is atomic under asyncio: of 50 concurrent callers in half-open,
exactly `half_open_requests` get a permit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


STATE_CODE = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5
    success_threshold: int = 3
    reset_timeout_s: float = 60.0
    half_open_requests: int = 1
    call_timeout_s: float = 30.0


@dataclass(frozen=True)
class Permit:
    generation: int
    trial: bool


@dataclass(frozen=True)
class Transition:
    before: State
    after: State
    at: float
    reason: str


class CircuitBreaker:
    def __init__(self, config: BreakerConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self._clock = clock
        self._state = State.CLOSED
        self._generation = 0
        self._failures = 0
        self._successes = 0
        self._trials = 0
        self._opened_at = 0.0
        self._listeners: list[Callable[[Transition], None]] = []
        self.opened_count = 0

    def subscribe(self, listener: Callable[[Transition], None]) -> None:
        """Called synchronously on every transition (alerts, metrics, logs)."""
        self._listeners.append(listener)

    @property
    def state(self) -> State:
        self._advance()
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def seconds_until_half_open(self) -> float:
        """0 unless open; then the time left before trials are admitted."""
        if self.state is not State.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.config.reset_timeout_s - self._clock())

    def acquire(self) -> Permit | None:
        """A permit to call the orchestrator now, or None: fail fast."""
        state = self.state
        if state is State.CLOSED:
            return Permit(self._generation, trial=False)
        if state is State.HALF_OPEN and self._trials < self.config.half_open_requests:
            self._trials += 1
            return Permit(self._generation, trial=True)
        return None

    def success(self, permit: Permit) -> None:
        if permit.generation != self._generation:
            return
        if self._state is State.CLOSED:
            self._failures = 0
        elif self._state is State.HALF_OPEN:
            self._trials -= 1
            self._successes += 1
            if self._successes >= self.config.success_threshold:
                self._move(State.CLOSED, f"{self._successes} successful trials")

    def failure(self, permit: Permit, reason: str = "") -> None:
        if permit.generation != self._generation:
            return
        if self._state is State.CLOSED:
            self._failures += 1
            if self._failures >= self.config.failure_threshold:
                self._open(f"{self._failures} consecutive failures; last: {reason}")
        elif self._state is State.HALF_OPEN:
            self._open(f"trial failed: {reason}")

    def release(self, permit: Permit) -> None:
        """The call ended without a verdict (cancelled): give the trial slot back."""
        if permit.generation == self._generation and permit.trial:
            self._trials -= 1

    def _advance(self) -> None:
        if (
            self._state is State.OPEN
            and self._clock() - self._opened_at >= self.config.reset_timeout_s
        ):
            self._move(State.HALF_OPEN, f"{self.config.reset_timeout_s:g}s since opening")

    def _open(self, reason: str) -> None:
        self._opened_at = self._clock()
        self.opened_count += 1
        self._move(State.OPEN, reason)

    def _move(self, after: State, reason: str) -> None:
        before = self._state
        self._state = after
        self._generation += 1
        self._failures = 0
        self._successes = 0
        self._trials = 0
        transition = Transition(before, after, self._clock(), reason)
        for listener in self._listeners:
            listener(transition)
