"""Apache Kafka in KRaft mode, run with `java` from the official jars on Maven Central.

A node with a `sasl_port` (the three-broker cluster's) also listens with SASL_SSL: TLS from the
stack's CA (`stack.tls`), the SCRAM-SHA-512 user `stack.plan.SASL_USER` put in the cluster's
metadata when its nodes are formatted, or, for a cluster formatted before it had the listener,
with `kafka-configs` once it runs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.client import AIOKafkaClient

from config.settings import Settings
from stack import render
from stack.errors import StackError
from stack.plan import SASL_PASSWORD, SASL_USER, KafkaCluster, KafkaNode, Layout
from stack.processes import port_answers, require_program
from stack.service import Service
from stack.tls import ensure_tls


@dataclass(frozen=True)
class KafkaRuntime:
    java: str
    libs: Path


def jars_dir(settings: Settings) -> Path:
    return settings.stack_cache_dir.expanduser() / f"kafka-{settings.stack_kafka_version}" / "libs"


def ensure_jars(settings: Settings) -> Path:
    """Kafka's jars in the cache directory, fetched with Maven on first use."""
    return fetch_jars(
        jars_dir(settings),
        render.kafka_pom(settings.stack_kafka_version),
        work=jars_dir(settings).parent,
        marker_jar="kafka_2.13-*.jar",
        what=f"Kafka {settings.stack_kafka_version}'s jars (Maven Central)",
        version=settings.stack_kafka_version,
    )


def fetch_jars(
    libs: Path, pom: str, *, work: Path, marker_jar: str, what: str, version: str
) -> Path:
    """The runtime dependencies of `pom` copied into `libs` by Maven, once: staged beside it
    and renamed into place whole, so a fetch cut short is never taken for a complete one."""
    if (libs / ".complete").exists():
        return libs
    mvn = require_program(
        "mvn", f"install Maven to fetch {what} (apt-get install maven), or run make deps"
    )
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(pom)
    staging = libs.with_name(libs.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(work / "pom.xml"), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={staging}"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0 or not any(staging.glob(marker_jar)):
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise StackError(f"Maven could not fetch {what}.", tail)
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    (libs / ".complete").write_text(version + "\n")
    return libs


def kafka_runtime(settings: Settings) -> KafkaRuntime:
    java = require_program("java", "install a JDK 17+ (apt-get install openjdk-17-jre-headless)")
    return KafkaRuntime(java=java, libs=ensure_jars(settings))


def new_cluster_id() -> str:
    """A Kafka Uuid as `kafka-storage random-uuid` prints it (never starting with '-')."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def cluster_id(layout: Layout, cluster: KafkaCluster) -> str:
    path = layout.root / "data" / f"{cluster.name}.cluster-id"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = new_cluster_id()
    path.write_text(value + "\n")
    return value


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    """aiokafka logs every refused connection; while polling a starting broker that is noise."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def broker_ids(
    bootstrap: str, timeout_ms: int = 5000, security: Mapping[str, Any] | None = None
) -> set[int]:
    """The ids of the live brokers in the metadata of the first bootstrap server that answers
    (empty on error). Only the bootstrap request is made, so a starting node answers for itself.
    `security`: `config.connections.kafka_security` for a listener that needs TLS or SASL."""
    with _quiet_aiokafka():
        client = AIOKafkaClient(
            bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms, **(security or {})
        )
        try:
            await client.bootstrap()
            return {int(broker.nodeId) for broker in client.cluster.brokers()}
        except Exception:
            return set()
        finally:
            with contextlib.suppress(Exception):
                await client.close()


class KafkaNodeService(Service):
    stop_grace_s = 30.0

    def __init__(self, settings: Settings, cluster: KafkaCluster, node: KafkaNode) -> None:
        self.settings = settings
        self.cluster = cluster
        self.node = node
        self.name = node.name
        self.address = node.address
        ports = (node.port, node.controller_port, node.sasl_port)
        self.ports = tuple(port for port in ports if port is not None)
        self._runtime: KafkaRuntime | None = None

    def check_prerequisites(self) -> None:
        self._runtime = kafka_runtime(self.settings)

    @property
    def runtime(self) -> KafkaRuntime:
        if self._runtime is None:
            self._runtime = kafka_runtime(self.settings)
        return self._runtime

    async def prepare(self, layout: Layout) -> list[str]:
        data = layout.data_dir(self.name)
        data.mkdir(parents=True, exist_ok=True)
        layout.conf_dir.mkdir(parents=True, exist_ok=True)
        layout.logs_dir.mkdir(parents=True, exist_ok=True)
        props = layout.conf_file(self.name, ".properties")
        keystore = ensure_tls(layout.tls_dir).keystore if self.node.sasl_port else None
        props.write_text(render.server_properties(self.cluster, self.node, data, keystore))
        log4j2 = layout.conf_file(self.name, "-log4j2.properties")
        log4j2.write_text(render.log4j2_properties(layout.log_file(self.name)))
        if not (data / "meta.properties").exists():
            await self._format(layout, props)
        return render.kafka_command(
            self.runtime.java,
            self.runtime.libs,
            self.settings.stack_kafka_heap,
            log4j2,
            props,
            layout.logs_dir,
        )

    async def _format(self, layout: Layout, props: Path) -> None:
        scram = [render.scram_credential(SASL_USER, SASL_PASSWORD)] if self.node.sasl_port else []
        command = render.storage_format_command(
            self.runtime.java, self.runtime.libs, cluster_id(layout, self.cluster), props, scram
        )
        data = layout.data_dir(self.name)
        await self._java(command, f"Kafka's storage format failed for {self.name} ({data}).")
        if scram:
            _scram_marker(layout, self.cluster).write_text(SASL_USER + "\n")

    async def _java(self, command: list[str], failure: str) -> None:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await process.communicate()
        if process.returncode != 0:
            raise StackError(failure, output.decode(errors="replace")[-3000:])

    async def after_ready(self) -> None:
        """A cluster formatted before it had the SASL listener gets its SCRAM user now."""
        if self.node.sasl_port is None or self.node != self.cluster.nodes[0]:
            return
        layout = Layout.of(self.settings)
        marker = _scram_marker(layout, self.cluster)
        if marker.exists():
            return
        command = render.scram_user_command(
            self.runtime.java,
            self.runtime.libs,
            self.cluster.bootstrap,
            SASL_USER,
            SASL_PASSWORD,
        )
        await self._java(command, f"could not create the SCRAM user of {self.cluster.name}.")
        marker.write_text(SASL_USER + "\n")

    async def ready(self) -> bool:
        if not port_answers(self.node.port):
            return False
        return self.node.node_id in await broker_ids(self.node.address)

    def log_files(self, layout: Layout) -> list[Path]:
        return [layout.log_file(self.name), layout.out_file(self.name)]


def _scram_marker(layout: Layout, cluster: KafkaCluster) -> Path:
    """Present once the cluster's metadata holds the stack's SCRAM user."""
    return layout.root / "data" / f"{cluster.name}.scram-user"


def node_services(settings: Settings, cluster: KafkaCluster) -> list[Service]:
    return [KafkaNodeService(settings, cluster, node) for node in cluster.nodes]
