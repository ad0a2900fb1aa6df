"""Prometheus metrics of the group's lag (and of the autoscaler), on their own registry.

`runway_consumer_lag_seconds{group,topic,partition}` is what the KEDA ScaledObject in deploy/
queries (`max(...)` over partitions = the group's lag); the companions give offset lag, drain
time and rates per partition and for the group, and the autoscaler's current and desired size.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from autoscale.lag import GroupLag

UNKNOWN = float("nan")  # Prometheus' way of saying "no figure yet"


class LagMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["group", "topic", "partition"]

        def gauge(name: str, doc: str, names: list[str]) -> Gauge:
            return Gauge(name, doc, names, registry=self.registry)

        self.lag_s = gauge(
            "runway_consumer_lag_seconds",
            "Now minus the stored timestamp of the record at the committed offset (0 caught up)",
            labels,
        )
        self.offset_lag = gauge(
            "runway_consumer_offset_lag", "End offset minus committed offset", labels
        )
        self.drain_s = gauge(
            "runway_consumer_drain_seconds", "Offset lag / consumption rate (NaN: no rate)", labels
        )
        self.group_lag_s = gauge(
            "runway_consumer_group_lag_seconds", "Max lag in seconds over partitions", ["group"]
        )
        self.group_offset_lag = gauge(
            "runway_consumer_group_offset_lag", "Offset lag summed over partitions", ["group"]
        )
        self.group_drain_s = gauge(
            "runway_consumer_group_drain_seconds",
            "Group offset lag / consumption rate (NaN: no rate)",
            ["group"],
        )
        self.consumption = gauge(
            "runway_consumer_group_consumption_rate", "Records/s committed", ["group"]
        )
        self.production = gauge(
            "runway_consumer_group_production_rate", "Records/s appended to inputs", ["group"]
        )
        self.workers = gauge("runway_autoscale_workers", "Workers running now", ["group"])
        self.desired = gauge("runway_autoscale_desired_workers", "The decision", ["group"])
        self.capped = gauge(
            "runway_autoscale_capped", "1 when the partition count limits the size", ["group"]
        )

    def observe(self, lag: GroupLag) -> None:
        g = lag.group
        for p in lag.partitions:
            key = (g, p.topic, str(p.partition))
            self.lag_s.labels(*key).set(p.lag_s)
            self.offset_lag.labels(*key).set(p.offset_lag)
            self.drain_s.labels(*key).set(UNKNOWN if p.drain_s is None else p.drain_s)
        self.group_lag_s.labels(g).set(lag.lag_s)
        self.group_offset_lag.labels(g).set(lag.offset_lag)
        self.group_drain_s.labels(g).set(UNKNOWN if lag.drain_s is None else lag.drain_s)
        rate = lag.consumption_rate
        self.consumption.labels(g).set(UNKNOWN if rate is None else rate)
        rate = lag.production_rate
        self.production.labels(g).set(UNKNOWN if rate is None else rate)

    def scaled(self, group: str, workers: int, desired: int, capped: bool) -> None:
        self.workers.labels(group).set(workers)
        self.desired.labels(group).set(desired)
        self.capped.labels(group).set(1 if capped else 0)

    def serve(self, host: str, port: int) -> None:
        """/metrics on `host:port` from a daemon thread (prometheus_client's own server)."""
        start_http_server(port, addr=host, registry=self.registry)
