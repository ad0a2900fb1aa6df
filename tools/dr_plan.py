"""The disaster-recovery drill's layout: its private clusters, ports and each region's settings.

Pure (no I/O but `free_block`'s port probe), so the region rules are tested directly.

A region is a Kafka cluster plus the workers that read it, writing their views apart from every
other region's: the batch view under `<RUNWAY_BATCH_VIEW_URI>/region=<name>` (a hive partition
above `date=`, so one dataset read from the root sees both regions, told apart by `region`), the
speed view under the Redis key prefix `<RUNWAY_REDIS_KEY_PREFIX>-<name>`. Nothing else differs:
topic names, the app id (consumer group) and the message contracts are the same in both, since
the mirror keeps topic names and partitions.

The drill never touches the shared stack's brokers: it runs a private primary (one broker, the
`dev` profile) and a private standby (three brokers, the `production` profile: replication 3,
`min.insync.replicas=2`) under its own stack dir, on free ports. Redis, S3 and PostgreSQL are the
shared stack's (Redis keys and the batch view are per run and per region; the registry is a
database of the run's own with a private streaming standby, `tools/dr_registry.py`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from config.settings import Settings
from stack.plan import (
    CLUSTER_SIZE,
    HOST,
    KafkaCluster,
    postgres_target,
    single_broker,
    three_brokers,
)
from stack.processes import port_free

PRIMARY = "primary"
STANDBY = "standby"
Profile = Literal["dev", "production"]
# The primary's broker (2 ports), the standby's three (9: plain, controller, SASL each), the
# registry's standby PostgreSQL, then the workers' web ports (10 apart per region).
KAFKA_PORTS = 2 + 3 * CLUSTER_SIZE
WEB_OFFSET = KAFKA_PORTS + 1


def ports_needed(workers: int) -> int:
    return WEB_OFFSET + 10 + workers


@dataclass(frozen=True)
class Region:
    name: str
    cluster: KafkaCluster
    settings: Settings  # its workers' and clients' settings


@dataclass(frozen=True)
class DrillLayout:
    run: str
    root: Path  # var/dr-drill/<run>: the private stack dir, the workers, the batch view
    stack: Settings  # for stack.api / stack.mirror: the private stack dir and ports
    primary: Region
    standby: Region


def region_uri(uri: str, region: str) -> str:
    """The batch view's root of one region: a `region=` hive directory under the shared one."""
    return f"{uri.rstrip('/')}/region={region}"


def region_prefix(prefix: str, region: str) -> str:
    """The speed view's Redis key prefix of one region."""
    return f"{prefix}-{region}"


def registry_database(run: str) -> str:
    """The run's own registry database on the stack's PostgreSQL (and so on its standby)."""
    return "dr_" + "".join(c if c.isalnum() else "_" for c in run).lower()


def registry_dsn(stack: Settings, port: int, run: str) -> str:
    user = postgres_target(stack).user
    return f"postgresql://{user}@{HOST}:{port}/{registry_database(run)}"


def region_settings(
    base: Settings,
    region: str,
    cluster: KafkaCluster,
    profile: Profile,
    web_port: int,
    workdir: Path,
    registry: str | None = None,
) -> Settings:
    """`base` pointed at the region's cluster, with its own views, data dir and web ports."""
    return base.model_copy(
        update={
            "kafka_bootstrap": cluster.bootstrap,
            "kafka_security_protocol": "PLAINTEXT",
            "profile": profile,
            "replication_factor": None,
            "min_insync_replicas": None,
            "redis_key_prefix": region_prefix(base.redis_key_prefix, region),
            "batch_view_uri": region_uri(base.batch_view_uri, region),
            "web_port": web_port,
            "datadir": workdir / region / "worker-0",
            "registry_dsn": registry,
        }
    )


def drill_layout(
    base: Settings, run: str, root: Path, ports: int, partitions: int, heap: str = "384m"
) -> DrillLayout:
    """Everything the drill runs, from a block of `ports_needed` ports at `ports`."""
    stack = base.model_copy(
        update={
            "stack_dir": root / "stack",
            "stack_kafka_port": ports,
            "stack_kafka_controller_port": ports + 1,
            "stack_cluster_port": ports + 2,
            "stack_kafka_heap": heap,
            "registry_standby_port": ports + KAFKA_PORTS,
        }
    )
    drill = base.model_copy(
        update={
            "partitions": partitions,
            "redis_key_prefix": f"dr-{run}",
            "batch_view_uri": str(root / "batch-view"),
        }
    )
    web = ports + WEB_OFFSET
    primary = single_broker(stack)
    standby = three_brokers(stack)
    return DrillLayout(
        run=run,
        root=root,
        stack=stack,
        primary=Region(
            PRIMARY,
            primary,
            region_settings(
                drill,
                PRIMARY,
                primary,
                "dev",
                web,
                root,
                registry_dsn(stack, stack.stack_postgres_port, run),
            ),
        ),
        standby=Region(
            STANDBY,
            standby,
            region_settings(
                drill,
                STANDBY,
                standby,
                "production",
                web + 10,
                root,
                registry_dsn(stack, stack.registry_standby_port, run),
            ),
        ),
    )


def free_block(size: int, rng: random.Random, low: int = 20_000, high: int = 32_000) -> int:
    """The first port of `size` consecutive ports nothing listens on now, below Linux's
    ephemeral range (32768-60999), where a client's outgoing connection could take one."""
    for _ in range(200):
        base = rng.randrange(low, high - size)
        if all(port_free(base + i) for i in range(size)):
            return base
    raise RuntimeError(f"no {size} consecutive free ports between {low} and {high}")
