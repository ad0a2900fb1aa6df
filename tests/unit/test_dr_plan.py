"""The drill's regions: their own views and clusters, nothing shared with the dev stack's."""

from __future__ import annotations

import random
import re
import socket
from pathlib import Path

from config.settings import Settings
from stack.mirror import (
    IDENTITY_POLICY,
    MirrorFlow,
    mirror_pom,
    mirror_properties,
    partitions_replicating,
    topics_pattern,
)
from tools.dr_drill import DrillResult, table
from tools.dr_plan import (
    KAFKA_PORTS,
    drill_layout,
    free_block,
    region_prefix,
    region_uri,
)


def test_region_paths_and_prefixes() -> None:
    assert (
        region_uri("s3://runway/batch-view/", "standby") == "s3://runway/batch-view/region=standby"
    )
    assert region_uri("var/batch-view", "primary") == "var/batch-view/region=primary"
    assert region_prefix("runway", "standby") == "runway-standby"


def test_layout_two_private_clusters_and_region_views(tmp_path: Path) -> None:
    base = Settings(redis_key_prefix="runway", batch_view_uri="var/batch-view", partitions=16)
    layout = drill_layout(base, "r1", tmp_path, 21_000, partitions=4)
    primary, standby = layout.primary, layout.standby
    assert primary.cluster.bootstrap == "127.0.0.1:21000"
    assert standby.cluster.bootstrap == "127.0.0.1:21002,127.0.0.1:21003,127.0.0.1:21004"
    ports = [p for c in (primary.cluster, standby.cluster) for n in c.nodes for p in
             (n.port, n.controller_port, n.sasl_port) if p is not None]  # fmt: skip
    assert sorted(ports) == list(range(21_000, 21_000 + KAFKA_PORTS))
    assert layout.stack.stack_dir == tmp_path / "stack"
    assert (primary.settings.profile, standby.settings.profile) == ("dev", "production")
    assert standby.settings.effective_replication_factor == 3
    assert primary.settings.kafka_bootstrap == primary.cluster.bootstrap
    assert standby.settings.kafka_bootstrap == standby.cluster.bootstrap
    assert primary.settings.redis_key_prefix == "dr-r1-primary"
    assert standby.settings.redis_key_prefix == "dr-r1-standby"
    assert standby.settings.batch_view_uri == f"{tmp_path}/batch-view/region=standby"
    assert primary.settings.partitions == standby.settings.partitions == 4
    assert primary.settings.web_port != standby.settings.web_port
    assert primary.settings.datadir != standby.settings.datadir
    # same topic names and group in both: the mirror keeps names, the standby its own offsets
    assert primary.settings.topic("predictions") == standby.settings.topic("predictions")
    assert primary.settings.app_id == standby.settings.app_id == base.app_id
    # one registry database of the run's own, on the stack's PostgreSQL and on its standby
    assert primary.settings.registry_dsn == "postgresql://runway@127.0.0.1:5433/dr_r1"
    assert standby.settings.registry_dsn == "postgresql://runway@127.0.0.1:21011/dr_r1"


def test_free_block_skips_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        start = free_block(3, random.Random(0), low=port - 2, high=port + 6)
        assert port not in range(start, start + 3)


def test_mirror_keeps_names_copies_only_the_inputs_and_one_way(tmp_path: Path) -> None:
    layout = drill_layout(Settings(), "r1", tmp_path, 21_000, partitions=4)
    flow = MirrorFlow(
        "primary", layout.primary.cluster, "standby", layout.standby.cluster,
        ("predictions", "outcomes"),
    )  # fmt: skip
    props = dict(
        line.split(" = ", 1)
        for line in mirror_properties(flow).splitlines()
        if " = " in line and not line.startswith("#")
    )
    assert props["replication.policy.class"] == IDENTITY_POLICY
    assert props["primary->standby.enabled"] == "true"
    assert props["standby->primary.enabled"] == "false"
    assert props["primary.bootstrap.servers"] == "127.0.0.1:21000"
    assert props["standby.bootstrap.servers"] == layout.standby.cluster.bootstrap
    assert props["offset-syncs.topic.location"] == "target"
    assert props["standby.producer.acks"] == "all"
    assert props["standby.producer.enable.idempotence"] == "true"  # order kept with 5 in flight
    assert props["standby.producer.max.in.flight.requests.per.connection"] == "5"
    assert props["standby.plugin.discovery"] == "service_load"
    assert props["sync.group.offsets.enabled"] == "false"
    pattern = re.compile(props["primary->standby.topics"])
    assert [t for t in ("predictions", "outcomes", "joined", "xpredictions", "outcomes2")
            if pattern.fullmatch(t)] == ["predictions", "outcomes"]  # fmt: skip
    assert topics_pattern(["a.b"]) == r"^a\.b$"
    assert "<artifactId>connect-mirror</artifactId><version>4.1.1</version>" in mirror_pom("4.1.1")


def test_mirror_ready_counts_each_tasks_latest_share() -> None:
    log = "\n".join(
        [
            "INFO task-thread-MirrorSourceConnector-0 replicating 8 topic-partitions a->b: [..]",
            "INFO rebalance",
            "INFO task-thread-MirrorSourceConnector-0 replicating 4 topic-partitions a->b: [..]",
            "INFO task-thread-MirrorSourceConnector-1 replicating 4 topic-partitions a->b: [..]",
        ]
    )
    assert partitions_replicating(log) == 8
    assert partitions_replicating("INFO Kafka MirrorMaker started") == 0


def test_the_drill_table_says_what_was_not_reached() -> None:
    result = DrillResult(
        run="r", rpo_events=3, rpo_s=1.25, rto_s=None, speed_view_s=40.0, mirrored_events=1200,
        produced_events=1203, unacknowledged_mirrored=0, views_exact=False, passed=False,
        view_problems=["m: labeled 1 != 2"], sent_events=1300, kill_after_s=60.0,
        standby="hot", workers=1, partitions=4, rate=1000.0, setup_s=100.0, promote_s=0.2,
        validated_s=90.0, registry_models_lost=0,
        validate_failover={"status": "degraded", "exit_code": 1}, run_s=300.0, logs="var/x",
    )  # fmt: skip
    rows = dict(
        re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in table(result).splitlines()
    )
    assert rows["RPO: events lost"] == "3 of 1,203 acknowledged"
    assert rows["RTO: kill to the standby's views exact"] == "not reached"
    assert rows["the speed view exact"] == "40.0 s"
    assert rows["validate-failover"] == "degraded (exit 1)"
    assert rows["passed"] == "NO"
