"""Prometheus metrics of a worker, served on its web server's /metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
