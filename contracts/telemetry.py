"""Prometheus metrics of a worker, served on its web server's /metrics."""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# The states of a staleness verdict (staleness/events.py), one `runway_model_state` series each.
MODEL_STATES = ("FRESH", "WARNING", "STALE")


class Telemetry:
    """One registry per worker process (tests build several apps in one process)."""

    def __init__(self) -> None:
        self._event_children: dict[tuple[str, str], Any] = {}
        self.registry = CollectorRegistry()
        self._events = Counter(
            "runway_input_events",
            "Input events by topic kind and result",
            ["kind", "result"],
            registry=self.registry,
        )
        self._joined = Counter("runway_joined_pairs", "Pairs joined", registry=self.registry)
        self._checkpoint = Histogram(
            "runway_checkpoint_seconds",
            "Time to make a checkpoint durable",
            registry=self.registry,
        )
        self.lag_seconds = Gauge(
            "runway_worker_lag_seconds",
            "Wall clock minus event time of the last input event",
            ["partition"],
            registry=self.registry,
        )
        self.state_keys = Gauge(
            "runway_state_keys",
            "Estimated keys in the join state",
            ["partition"],
            registry=self.registry,
        )
        self.speed_view_writes = Counter(
            "runway_speed_view_writes", "Model hashes written to Redis", registry=self.registry
        )
        self.speed_view_errors = Counter(
            "runway_speed_view_errors", "Failed speed-view flushes", registry=self.registry
        )
        self.batch_view_rows = Counter(
            "runway_batch_view_rows", "Rows written to Parquet", registry=self.registry
        )
        self.batch_view_duplicates = Counter(
            "runway_batch_view_duplicates",
            "Replayed pairs dropped by prediction_id",
            registry=self.registry,
        )

        self.staleness_events = Counter(
            "runway_staleness_events",
            "Staleness events emitted, by state",
            ["state"],
            registry=self.registry,
        )
        self.records_refused = Counter(
            "runway_records_refused",
            "Input records dropped unapplied (not_owned: fetched before a rebalance)",
            ["reason"],
            registry=self.registry,
        )
        self.records_filled = Counter(
            "runway_records_filled",
            "Records the consumer skipped, read and applied by the processor itself",
            registry=self.registry,
        )

        self.timer_errors = Counter(
            "runway_timer_errors",
            "Periodic tasks (speed view, staleness, watchdog) that raised; retried next tick",
            ["timer"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "runway_dead_letters",
            "Input records or events sent to the dead-letter topic, by class of reason",
            ["reason"],
            registry=self.registry,
        )
        self.watchdog_seeks = Counter(
            "runway_watchdog_seeks",
            "Input partitions the progress watchdog found stalled and sought back to the marker",
            registry=self.registry,
        )
        # Per model, for alerts and dashboards on a model's verdict: 1 + len(MODEL_STATES) series
        # per model judged by this worker (README, "Grafana and alerts": cardinality).
        self.model_staleness_score = Gauge(
            "runway_model_staleness_score",
            "Score (0 fresh .. 1 stale) of the model's latest verdict on this worker",
            ["model_id"],
            registry=self.registry,
        )
        self.model_state = Gauge(
            "runway_model_state",
            "1 for the state of the model's latest verdict on this worker, 0 for the others",
            ["model_id", "state"],
            registry=self.registry,
        )

    def events(self, kind: str, good: int, bad: int) -> None:
        # Children by label, cached: `labels()` takes a lock and builds a key on every call,
        # and this runs for every input record.
        if good:
            self._child(kind, "ok").inc(good)
        if bad:
            self._child(kind, "dead_letter").inc(bad)

    def _child(self, kind: str, outcome: str) -> Any:
        child = self._event_children.get((kind, outcome))
        if child is None:
            child = self._event_children[(kind, outcome)] = self._events.labels(kind, outcome)
        return child

    def joined(self, count: int) -> None:
        self._joined.inc(count)

    def checkpointed(self, seconds: float) -> None:
        self._checkpoint.observe(seconds)

    def model_verdict(self, model_id: str, state: str, score: float) -> None:
        self.model_staleness_score.labels(model_id).set(score)
        for each in MODEL_STATES:
            self.model_state.labels(model_id, each).set(1.0 if each == state else 0.0)

    def forget_model(self, model_id: str) -> None:
        """The model is judged elsewhere now (its partition moved) or no more (forgotten as
        idle): its series go, so two workers never export one model's state."""
        with contextlib.suppress(KeyError):
            self.model_staleness_score.remove(model_id)
        for each in MODEL_STATES:
            with contextlib.suppress(KeyError):
                self.model_state.remove(model_id, each)
