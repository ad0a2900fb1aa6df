"""Fault injection under load, for `test_faults.py`: private services, a paced generator, and
the figures each case reports (catch-up time, lost and doubled pairs).

Everything a fault touches is this session's own: a three-broker cluster, Redis, moto S3 and
PostgreSQL started from a private stack directory under `var/faults/` on free ports (the shared
stack's services are used by other people's tests at the same time, and killing them would be
their fault too). The services are the stack's own (`stack.kafka`, `stack.redis`, ...), started
and stopped through `stack.api` exactly as `runway stack up` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from config.connections import kafka_options
from config.settings import Settings
from stack import api, processes
from stack.clock import Deadline, wait_until_sync
from stack.kafka import node_services
from stack.plan import CLUSTER, KafkaCluster, Layout, three_brokers
from stack.postgres import PostgresService
from stack.redis import RedisService
from stack.s3 import S3Service
from stack.service import Service
from tools.traffic import Record

ROOT = Path(__file__).resolve().parents[2]
FAULTS_DIR = ROOT / "var" / "faults"
RESULTS = FAULTS_DIR / "results.jsonl"


def free_port_run(width: int, start: int = 19_200) -> int:
    """The first port of `width` consecutive free ones (the cluster's listeners are a block)."""
    base = start
    while base < 60_000:
        if all(processes.port_free(base + i) for i in range(width)):
            return base
        base += width + 1
    raise RuntimeError("no block of free ports for a private Kafka cluster")


@dataclass
class PrivateStack:
    """A stack directory of this session's own: services started here die here."""

    settings: Settings

    @classmethod
    def create(cls, name: str) -> PrivateStack:
        root = FAULTS_DIR / f"{name}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        root.mkdir(parents=True)
        # PostgreSQL runs as `postgres` when we are root: every directory on the way is 0755
        for path in (FAULTS_DIR.parent, FAULTS_DIR, root):
            path.chmod(0o755)
        settings = Settings(
            stack_dir=root,
            stack_cluster_port=free_port_run(9),
            stack_redis_port=processes.free_port(),
            stack_s3_port=processes.free_port(),
            stack_postgres_port=processes.free_port(),
            stack_up_timeout_s=180.0,
            stack_kafka_heap="384m",
        )
        return cls(settings)

    @property
    def layout(self) -> Layout:
        return Layout.of(self.settings)

    @property
    def cluster(self) -> KafkaCluster:
        return three_brokers(self.settings)

    def broker_name(self, node_id: int) -> str:
        return f"{CLUSTER}-{node_id}"

    def pid(self, name: str) -> int:
        record = processes.running(self.layout.pid_file(name))
        assert record is not None, f"{name} of {self.layout.root} is not running"
        return record.pid

    async def start(self, services: Sequence[Service]) -> None:
        await api.start_services(self.settings, services)

    async def start_cluster(self) -> None:
        await self.start(node_services(self.settings, self.cluster))

    async def start_brokers(self, node_ids: Sequence[int]) -> None:
        await self.start([api.broker_service(self.settings, n) for n in node_ids])

    def kill(self, name: str, ports: Sequence[int] = ()) -> int:
        """SIGKILL, no goodbye (the process group: a service may have children). Returns once
        the process is gone and `ports` can be bound again (the kernel lets go of a killed
        listener a moment after the process is reaped, and `stack.api` refuses a taken port)."""
        pid = self.pid(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        gone = wait_until_sync(
            lambda: (
                processes.running(self.layout.pid_file(name)) is None
                and all(processes.port_free(port) for port in ports)
            ),
            Deadline(60.0),
        )
        assert gone, f"{name} (pid {pid}) or its ports {ports} still taken after SIGKILL"
        return pid

    def kill_broker(self, node_id: int) -> int:
        node = self.cluster.node(node_id)
        ports = [p for p in (node.port, node.controller_port, node.sasl_port) if p is not None]
        return self.kill(self.broker_name(node_id), ports)

    def discard(self) -> None:
        """SIGKILL everything this stack runs and remove its directory (nothing in it is kept,
        so no clean shutdown is owed: a controlled shutdown of three brokers takes seconds)."""
        for pid_file in self.layout.run_dir.glob("*.pid"):
            if processes.running(pid_file) is not None:
                self.kill(pid_file.stem)
        self.remove()

    def stop(self, names: Sequence[str]) -> None:
        api.stop_services(self.settings, names)

    def redis(self) -> RedisService:
        return RedisService(self.settings)

    def s3(self) -> S3Service:
        return S3Service(self.settings)

    def postgres(self) -> PostgresService:
        return PostgresService(self.settings)

    def down(self) -> None:
        api.down(self.settings)

    def remove(self) -> None:
        shutil.rmtree(self.layout.root, ignore_errors=True)


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """SIGSTOP a process and SIGCONT it on the way out, whatever happens in between."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


# -- the generator -----------------------------------------------------------------------------


@dataclass
class Generator:
    """Sends a data set's records paced over `seconds`, as a model server would, while the
    faults happen. Its producer is the product's (acks=all, idempotent) with a request timeout
    longer than any fault, so a send waits out an outage instead of failing (a failed send
    would leave the oracle unsure whether the record is in the log)."""

    settings: Settings
    records: list[Record]
    seconds: float
    sent: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        producer = AIOKafkaProducer(
            **kafka_options(self.settings),
            acks="all",
            enable_idempotence=True,
            linger_ms=20,
            request_timeout_ms=300_000,
            max_batch_size=1_048_576,
        )
        await producer.start()
        try:
            started = time.monotonic()
            slices = max(int(self.seconds * 4), 1)  # a slice every 0.25 s
            per_slice = -(-len(self.records) // slices)
            futures = []
            for i in range(0, len(self.records), per_slice):
                due = started + (i // per_slice) * self.seconds / slices
                await asyncio.sleep(max(due - time.monotonic(), 0))
                for record in self.records[i : i + per_slice]:
                    topic = self.settings.topic(record.topic)
                    futures.append(await producer.send(topic, record.value, key=record.key))
                    self.sent += 1
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
            self.done.set()


@contextlib.asynccontextmanager
async def generating(gen: Generator) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(gen.run())
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


# -- what the cluster says -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def admin_client(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(**kafka_options(settings), request_timeout_ms=10_000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


def _partitions_of(topic: dict[str, Any]) -> list[dict[str, Any]]:
    return list(topic.get("partitions", []))


async def leader_of(settings: Settings, topic: str, partition: int) -> int:
    async with admin_client(settings) as admin:
        (described,) = await admin.describe_topics([topic])
    for part in _partitions_of(described):
        if part["partition"] == partition:
            return int(part["leader"])
    raise AssertionError(f"{topic}[{partition}] not in {described}")


async def fully_replicated(settings: Settings, replicas: int) -> bool:
    """Every partition of the test's topics (and its app's internal ones) has a leader and
    `replicas` replicas in sync."""
    try:
        async with admin_client(settings) as admin:
            names = [
                n
                for n in await admin.list_topics()
                if n.startswith(settings.topic_prefix) or n.startswith(settings.app_id)
            ]
            described = await admin.describe_topics(names)
    except (TimeoutError, KafkaError, OSError):
        return False
    for topic in described:
        if topic.get("error_code"):
            return False
        for part in _partitions_of(topic):
            if part["leader"] < 0 or len(part["isr"]) < replicas:
                return False
    return True


async def end_offsets(settings: Settings, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**kafka_options(settings), request_timeout_ms=10_000)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def committed_reach(settings: Settings, group: str, ends: dict[TopicPartition, int]) -> bool:
    """True when `group` has committed at least `ends` on every partition (0 ends need none)."""
    try:
        async with admin_client(settings) as admin:
            committed = await admin.list_consumer_group_offsets(group)
    except (TimeoutError, KafkaError, OSError):
        return False
    for tp, end in ends.items():
        meta = committed.get(tp)
        if end > 0 and (meta is None or meta.offset < end):
            return False
    return True


# -- what a case reports -------------------------------------------------------------------


@dataclass
class Report:
    """One case's figures, printed and appended as a JSON line to var/faults/results.jsonl."""

    case: str
    fault_s: float = 0.0
    catch_up_s: float | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    def write(self) -> dict[str, Any]:
        line = {
            "case": self.case,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "fault_s": round(self.fault_s, 1),
            "catch_up_s": None if self.catch_up_s is None else round(self.catch_up_s, 1),
            **self.figures,
        }
        FAULTS_DIR.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("ab") as out:
            out.write(orjson.dumps(line) + b"\n")
        print(f"fault case: {orjson.dumps(line).decode()}")
        return line


async def committed_offsets(settings: Settings, group: str) -> dict[TopicPartition, int]:
    async with admin_client(settings) as admin:
        committed = await admin.list_consumer_group_offsets(group)
    return {tp: meta.offset for tp, meta in committed.items() if meta is not None}


@dataclass
class CatchUp:
    seconds: float  # from the fault's end until the group committed the backlog it left
    backlog: int  # input records not yet committed when the fault ended


async def catch_up_time(
    settings: Settings, group: str, topics: list[str], since: float, timeout: float
) -> CatchUp:
    """From `since` (monotonic: the fault's end) until `group` has committed every record
    `topics` held when this is called (right after the fault ends)."""
    ends = await end_offsets(settings, topics)
    try:
        committed = await committed_offsets(settings, group)
    except (TimeoutError, KafkaError, OSError):
        committed = {}
    backlog = sum(max(end - committed.get(tp, 0), 0) for tp, end in ends.items())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await committed_reach(settings, group, ends):
            return CatchUp(time.monotonic() - since, backlog)
        await asyncio.sleep(0.25)
    raise AssertionError(f"{group} did not catch up within {timeout}s of the fault's end")
