"""Apache Kafka's MirrorMaker 2 (dedicated mode) copying topics from one local cluster to another.

Why it is here: the disaster-recovery drill (`runway dr-drill`) simulates a second region with
a second Kafka cluster fed by MirrorMaker, as a deployment across regions would be. It runs like
the stack's brokers: the official jars of the stack's Kafka version (`connect-mirror` and its
runtime closure) fetched from Maven Central into `~/.cache/runway/kafka-<v>/mirror-libs` on first
use, `java -cp 'mirror-libs/*' org.apache.kafka.connect.mirror.MirrorMaker mirror.properties`,
its files under the stack dir (`conf/<name>.properties`, `logs/<name>.log`).

The mirror keeps topic names (`IdentityReplicationPolicy`: `predictions` stays `predictions`,
not `primary.predictions`) and partition numbers, so the standby's workers read the same
co-partitioned input under the same names. It copies records only: no consumer offsets, no
heartbeats, no checkpoints, no topic configs. The standby's workers keep their own offsets
(markers) and so rebuild their own state from the mirrored input. Its Connect bookkeeping
(offsets, configs, status, offset syncs) lives in the target cluster, which survives the source.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from config.settings import Settings
from stack import render
from stack.kafka import KafkaRuntime, fetch_jars, kafka_runtime
from stack.plan import KafkaCluster, Layout
from stack.processes import port_answers
from stack.service import Service

MAIN_CLASS = "org.apache.kafka.connect.mirror.MirrorMaker"
IDENTITY_POLICY = "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
STARTED_LINE = "Kafka MirrorMaker started"
# MirrorSourceTask's line when a task starts copying its share of the partitions.
REPLICATING = re.compile(r"task-thread-(\S+) replicating (\d+) topic-partitions")


def partitions_replicating(log_text: str) -> int:
    """Topic-partitions the source tasks copy, by each task's latest start line (a rebalance
    restarts the tasks and they log again)."""
    latest = {match[1]: int(match[2]) for match in REPLICATING.finditer(log_text)}
    return sum(latest.values())


@dataclass(frozen=True)
class MirrorFlow:
    """One direction of mirroring: `topics` (exact names) from `source` to `target`."""

    source_alias: str
    source: KafkaCluster
    target_alias: str
    target: KafkaCluster
    topics: tuple[str, ...]


def mirror_pom(version: str) -> str:
    """A pom whose runtime closure is MirrorMaker 2 (plus the log4j2 binding Kafka's lacks)."""
    return render.jars_pom(
        "mirror-jars",
        version,
        [
            ("org.apache.kafka", "connect-mirror", version),
            ("org.apache.kafka", "connect-mirror-client", version),
        ],
    )


def topics_pattern(topics: Sequence[str]) -> str:
    """MM2's topic filter is a list of regular expressions: the exact names, nothing else."""
    return "|".join(f"^{re.escape(topic)}$" for topic in topics)


def mirror_properties(flow: MirrorFlow, tasks: int = 2) -> str:
    """The dedicated-mode configuration of one flow (the reverse direction disabled)."""
    src, dst = flow.source_alias, flow.target_alias
    rf = flow.target.replication_factor
    props: dict[str, object] = {
        "clusters": f"{src}, {dst}",
        f"{src}.bootstrap.servers": flow.source.bootstrap,
        f"{dst}.bootstrap.servers": flow.target.bootstrap,
        f"{src}->{dst}.enabled": "true",
        f"{src}->{dst}.topics": topics_pattern(flow.topics),
        f"{dst}->{src}.enabled": "false",
        "replication.policy.class": IDENTITY_POLICY,
        "tasks.max": tasks,
        # The jars declare their plugins (ServiceLoader manifests): no class-path scan at start
        # (the herder of each flow reads it from its target's settings; the scan took 36 s).
        "plugin.discovery": "service_load",
        f"{dst}.plugin.discovery": "service_load",
        "refresh.topics.interval.seconds": 5,
        "sync.topic.configs.enabled": "false",
        "sync.topic.acls.enabled": "false",
        "emit.heartbeats.enabled": "false",
        # No consumer group is checkpointed (`groups` matches none): the standby's workers keep
        # their own offsets. Disabling the connector instead is logged as a configuration error.
        "emit.checkpoints.enabled": "true",
        "groups": "^$",
        "sync.group.offsets.enabled": "false",
        # Bookkeeping in the target: the source is what the drill kills.
        "offset-syncs.topic.location": "target",
        "replication.factor": rf,
        "offset-syncs.topic.replication.factor": rf,
        "heartbeats.topic.replication.factor": rf,
        "checkpoints.topic.replication.factor": rf,
        "offset.storage.replication.factor": rf,
        "config.storage.replication.factor": rf,
        "status.storage.replication.factor": rf,
        # Nothing acknowledged by the target is lost, nothing is reordered within a partition
        # (idempotence keeps the order with up to 5 requests in flight). Connect's own producer
        # defaults, 16 KiB batches and one request in flight, held the copy to about 2,300
        # events/s here (batches of 100 events are ~15 KiB records: one record per request).
        f"{dst}.producer.acks": "all",
        f"{dst}.producer.enable.idempotence": "true",
        f"{dst}.producer.max.in.flight.requests.per.connection": 5,
        f"{dst}.producer.batch.size": 1_048_576,
        f"{dst}.producer.linger.ms": 20,
        f"{dst}.producer.max.request.size": render.MESSAGE_MAX_BYTES,
        f"{src}.consumer.auto.offset.reset": "earliest",
        f"{src}.consumer.max.partition.fetch.bytes": render.MESSAGE_MAX_BYTES,
    }
    lines = [f"{key} = {value}" for key, value in props.items()]
    header = "# Generated by runway (stack.mirror); edits are overwritten.\n"
    return header + "\n".join(lines) + "\n"


def mirror_command(
    java: str, libs: Path, heap: str, log4j2_file: Path, props_file: Path
) -> list[str]:
    return [
        java,
        f"-Xmx{heap}",
        "-Xms64m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j2_file}",
        "-cp",
        f"{libs}/*",
        MAIN_CLASS,
        str(props_file),
    ]


def mirror_jars_dir(settings: Settings) -> Path:
    root = settings.stack_cache_dir.expanduser() / f"kafka-{settings.stack_kafka_version}"
    return root / "mirror-libs"


def ensure_mirror_jars(settings: Settings) -> Path:
    """MirrorMaker 2's jars in the cache directory, fetched with Maven on first use."""
    libs = mirror_jars_dir(settings)
    return fetch_jars(
        libs,
        mirror_pom(settings.stack_kafka_version),
        work=libs.parent / "mirror",
        marker_jar="connect-mirror-*.jar",
        what=f"MirrorMaker {settings.stack_kafka_version}'s jars "
        "(org.apache.kafka:connect-mirror, Maven Central)",
        version=settings.stack_kafka_version,
    )


class MirrorService(Service):
    """MirrorMaker 2 as a stack service: started, waited for and stopped like a broker.

    Ready once every broker of both clusters answers and its log says it started (and, given
    `partitions`, that its tasks copy all of them); what the copy holds is judged by what
    reaches the target (the drill and the tests read it).
    """

    stop_grace_s = 20.0

    def __init__(
        self,
        settings: Settings,
        flow: MirrorFlow,
        name: str = "mirror",
        partitions: int | None = None,
    ) -> None:
        """`partitions`: the source partitions of `flow.topics`; when given, ready means every
        one of them is being copied (MirrorMaker takes a minute or more to get there)."""
        self.settings = settings
        self.flow = flow
        self.partitions = partitions
        self.name = name
        self.address = f"{flow.source_alias} -> {flow.target_alias} ({flow.target.bootstrap})"
        self.ports = ()
        self._runtime: KafkaRuntime | None = None
        self._libs: Path | None = None
        self._log = Layout.of(settings).log_file(name)

    def check_prerequisites(self) -> None:
        self._runtime = kafka_runtime(self.settings)
        self._libs = ensure_mirror_jars(self.settings)

    async def prepare(self, layout: Layout) -> list[str]:
        if self._runtime is None or self._libs is None:
            self.check_prerequisites()
        assert self._runtime is not None and self._libs is not None
        layout.conf_dir.mkdir(parents=True, exist_ok=True)
        layout.logs_dir.mkdir(parents=True, exist_ok=True)
        props = layout.conf_file(self.name, ".properties")
        props.write_text(mirror_properties(self.flow))
        log4j2 = layout.conf_file(self.name, "-log4j2.properties")
        self._log = layout.log_file(self.name)
        self._log.unlink(missing_ok=True)  # ready() reads this start's lines only
        log4j2.write_text(render.log4j2_properties(self._log))
        return mirror_command(
            self._runtime.java, self._libs, self.settings.stack_kafka_heap, log4j2, props
        )

    async def ready(self) -> bool:
        nodes = (*self.flow.source.nodes, *self.flow.target.nodes)
        if not all(port_answers(node.port) for node in nodes):
            return False
        try:
            text = self._log.read_text(errors="replace")
        except OSError:
            return False
        if STARTED_LINE not in text:
            return False
        return self.partitions is None or partitions_replicating(text) >= self.partitions

    def log_files(self, layout: Layout) -> list[Path]:
        return [layout.log_file(self.name), layout.out_file(self.name)]
