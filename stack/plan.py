"""Where the local stack keeps its files and which ports it uses: pure, no I/O.

One directory (`settings.stack_dir`) holds everything: `run/` pid files, `logs/`, `conf/`
generated configuration (`conf/tls/`: the stack's CA and server certificate) and `data/` per
service. Every service binds 127.0.0.1 only.

The local stack's credentials are fixed and public (local-only services, like the keys of the
S3 stand-in): the three-broker cluster's SCRAM user and the S3 keys. A client of the stack is
given them explicitly (`local_s3_credentials`, `sasl_client_settings`); nothing defaults to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import SecretStr

from config.settings import Settings

HOST = "127.0.0.1"
SINGLE = "kafka"
CLUSTER = "kafka3"
CLUSTER_SIZE = 3
SASL_MECHANISM = "SCRAM-SHA-512"
SASL_USER = "runway"
SASL_PASSWORD = "runway-secret"  # the local stack's, public like the S3 keys
S3_ACCESS_KEY = "runway"
S3_SECRET_KEY = "runway-secret"  # moto takes any key


@dataclass(frozen=True)
class Layout:
    """The stack directory's tree (an absolute path, so pid files survive a `cd`)."""

    root: Path

    @classmethod
    def of(cls, settings: Settings) -> Layout:
        return cls(settings.stack_dir.expanduser().resolve())

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def out_file(self, name: str) -> Path:
        """What a process writes to stdout/stderr (Kafka's own log goes to `log_file`)."""
        return self.logs_dir / f"{name}.out"

    def data_dir(self, name: str) -> Path:
        return self.root / "data" / name

    def conf_file(self, name: str, suffix: str) -> Path:
        return self.conf_dir / f"{name}{suffix}"

    @property
    def tls_dir(self) -> Path:
        """The stack's CA and server certificate, kept across `up`s (clients trust the CA)."""
        return self.conf_dir / "tls"

    @property
    def ca_file(self) -> Path:
        """The CA certificate a client of the stack's TLS listeners trusts."""
        return self.tls_dir / "ca.pem"


@dataclass(frozen=True)
class KafkaNode:
    """One combined broker+controller KRaft node."""

    cluster: str
    node_id: int
    port: int
    controller_port: int
    sasl_port: int | None = None  # a SASL_SSL listener next to PLAINTEXT (three-broker cluster)

    @property
    def name(self) -> str:
        return self.cluster if self.cluster == SINGLE else f"{self.cluster}-{self.node_id}"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass(frozen=True)
class KafkaCluster:
    name: str
    nodes: tuple[KafkaNode, ...]
    replication_factor: int
    min_insync_replicas: int

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.nodes)

    @property
    def sasl_bootstrap(self) -> str:
        """The SASL_SSL listeners (SCRAM over TLS); empty when the cluster has none."""
        return ",".join(f"{HOST}:{n.sasl_port}" for n in self.nodes if n.sasl_port is not None)

    @property
    def quorum_voters(self) -> str:
        return ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(f"{self.name} has no node {node_id}")


def single_broker(settings: Settings) -> KafkaCluster:
    node = KafkaNode(SINGLE, 1, settings.stack_kafka_port, settings.stack_kafka_controller_port)
    return KafkaCluster(SINGLE, (node,), replication_factor=1, min_insync_replicas=1)


def three_brokers(settings: Settings) -> KafkaCluster:
    base = settings.stack_cluster_port
    nodes = tuple(
        KafkaNode(
            CLUSTER,
            i + 1,
            port=base + i,
            controller_port=base + CLUSTER_SIZE + i,
            sasl_port=base + 2 * CLUSTER_SIZE + i,
        )
        for i in range(CLUSTER_SIZE)
    )
    return KafkaCluster(CLUSTER, nodes, replication_factor=3, min_insync_replicas=2)


def cluster_for(settings: Settings, brokers: int) -> KafkaCluster:
    if brokers == 1:
        return single_broker(settings)
    if brokers == CLUSTER_SIZE:
        return three_brokers(settings)
    raise ValueError(f"the local stack runs 1 or {CLUSTER_SIZE} brokers, not {brokers}")


@dataclass(frozen=True)
class PostgresTarget:
    user: str
    database: str


def postgres_target(settings: Settings) -> PostgresTarget:
    url = urlparse(settings.postgres_url)
    return PostgresTarget(user=url.username or "runway", database=url.path.lstrip("/") or "runway")


def local_s3_credentials() -> dict[str, Any]:
    """Settings updates for a client of the stack's S3 (boto3 needs a key; moto takes any)."""
    return {"aws_access_key_id": S3_ACCESS_KEY, "aws_secret_access_key": SecretStr(S3_SECRET_KEY)}


def sasl_client_settings(layout: Layout, cluster: KafkaCluster) -> dict[str, Any]:
    """Settings updates for a client of the cluster's SASL_SSL listeners (SCRAM over TLS,
    verified against the stack's CA), for `Settings.model_copy(update=...)`."""
    if not cluster.sasl_bootstrap:
        raise ValueError(f"{cluster.name} has no SASL_SSL listener")
    return {
        "kafka_bootstrap": cluster.sasl_bootstrap,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": SASL_MECHANISM,
        "kafka_sasl_username": SASL_USER,
        "kafka_sasl_password": SecretStr(SASL_PASSWORD),
        "kafka_ssl_cafile": layout.ca_file,
    }
