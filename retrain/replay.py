"""The replay of one dead-lettered request, and when to give up on it. No I/O: the dispatcher
(breaker, retries, the orchestrator call) and sleep are injected, so a test moves the breaker's
clock instead of waiting.

The replayer settles `retrain-dlq` in order, so a request it retried forever would hold back
every request behind it. A *failed replay* is a delivery that reached the orchestrator (at least
one call) and still ended dead-lettered: retries exhausted, or the breaker opened on it (a failed
half-open trial). After `max_replays` of them the request is *parked*: the caller records it with
its last error and moves on. A delivery the breaker refused without a call (its trial slot taken)
says nothing about the request and is not counted.

The count lives in memory: a restart replays the uncommitted dead letter from zero, granting it
at most `max_replays` more. While the orchestrator is down for everybody, the request at the head
of the queue fails one half-open trial per breaker cycle, so an outage longer than `max_replays`
cycles parks it too: the default (RUNWAY_RETRAIN_MAX_REPLAYS) is chosen with that in mind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from retrain.breaker import State
from retrain.dispatch import Dispatcher, Outcome
from retrain.messages import RetrainRequest


@dataclass(frozen=True)
class Replay:
    outcome: Outcome  # of the last delivery: started or failed, or (parked) its last failure
    failed_replays: int
    parked: bool


async def replay(
    request: RetrainRequest,
    dispatcher: Dispatcher,
    *,
    max_replays: int,
    poll_s: float,
    sleep: Callable[[float], Awaitable[None]],
    observe: Callable[[Outcome], None] = lambda outcome: None,
) -> Replay:
    """Deliver `request` until it is settled (started or failed) or has failed `max_replays`
    replays. While the breaker is open it waits for half-open; half-open, the request is the
    trial; closed, it gets the full retry policy. `observe` sees every delivery's outcome."""
    breaker = dispatcher.breaker
    failed = 0
    while True:
        while breaker.state is State.OPEN:
            await sleep(max(0.01, breaker.seconds_until_half_open()))
        outcome = await dispatcher.deliver(request)
        observe(outcome)
        if outcome.fate != "dead-lettered":
            return Replay(outcome, failed, parked=False)
        if outcome.attempts:
            failed += 1
            if failed >= max_replays:
                return Replay(outcome, failed, parked=True)
        if breaker.state is not State.OPEN:  # trial slot taken, or retries exhausted
            await sleep(poll_s)
