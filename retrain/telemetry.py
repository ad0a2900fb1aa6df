"""The retrain agent's Prometheus metrics and its alert when the breaker opens."""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from retrain.breaker import STATE_CODE, CircuitBreaker, State, Transition

log = logging.getLogger("runway.retrain")


class RetrainTelemetry:
    def __init__(self, breaker: CircuitBreaker, queue_depth: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        state = Gauge(
            "runway_retrain_breaker_state",
            "Orchestrator circuit breaker: 0 closed, 1 half-open, 2 open",
            registry=self.registry,
        )
        state.set_function(lambda: STATE_CODE[breaker.state])
        self.opened = Counter(
            "runway_retrain_breaker_opened",
            "Times the orchestrator circuit breaker opened (alert on any increase)",
            registry=self.registry,
        )
        self.transitions = Counter(
            "runway_retrain_breaker_transitions",
            "Breaker transitions by target state",
            ["state"],
            registry=self.registry,
        )
        depth = Gauge(
            "runway_retrain_queue_depth",
            "Retrain requests waiting for one of the concurrent slots",
            registry=self.registry,
        )
        depth.set_function(queue_depth)
        self.in_flight = Gauge(
            "runway_retrain_in_flight", "Requests being sent now", registry=self.registry
        )
        self.requests = Counter(
            "runway_retrain_requests",
            "Retrain request status changes",
            ["status"],
            registry=self.registry,
        )
        self.attempts = Counter(
            "runway_retrain_orchestrator_calls",
            "Calls that reached the orchestrator (retries included)",
            registry=self.registry,
        )
        self.replayed = Counter(
            "runway_retrain_dlq_replayed",
            "Dead-lettered requests settled by the replayer",
            registry=self.registry,
        )
        self.parked = Counter(
            "runway_retrain_parked",
            "Dead-lettered requests given up after RUNWAY_RETRAIN_MAX_REPLAYS failed replays, by "
            "their last failure (unreachable, http_<status>)",
            ["reason"],
            registry=self.registry,
        )
        self.unrecorded = Counter(
            "runway_retrain_unrecorded",
            "Status writes the registry database refused for good (the request went on)",
            ["status"],
            registry=self.registry,
        )
        breaker.subscribe(self.on_transition)

    def on_transition(self, transition: Transition) -> None:
        self.transitions.labels(transition.after.value).inc()
        if transition.after is State.OPEN:
            self.opened.inc()
            log.error(
                "ALERT: circuit to the orchestrator OPEN (%s); retrain requests go to the "
                "dead-letter queue until it closes",
                transition.reason,
            )
        else:
            log.warning(
                "orchestrator circuit %s -> %s (%s)",
                transition.before.value,
                transition.after.value,
                transition.reason,
            )
