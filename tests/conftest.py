"""Shared fixtures: the real local stack, started once per session through `stack.api`.

`stack` starts the single-broker Kafka, Redis, S3 and PostgreSQL (or reuses a running one);
`cluster` adds the three-broker Kafka cluster on first use. A service that cannot start fails
the session loudly with the reason. At the end, only what this session started is stopped
(or handed over to a session still running on the same stack dir).
`settings` gives each test its own topic prefix and app id, its topics already created.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from config.settings import Settings, load_settings
from stack import api, processes
from stack.errors import StackError
from stack.plan import KafkaCluster, Layout, local_s3_credentials, single_broker, three_brokers
from stack.topics import ensure_topics


@dataclass(frozen=True)
class StackHandle:
    """A running stack: the settings it was started with and its Kafka cluster."""

    settings: Settings
    kafka: KafkaCluster
    started: tuple[str, ...]  # services this session started (and so stops)


async def _start(base: Settings, brokers: int) -> AsyncIterator[StackHandle]:
    before = {row.name for row in await api.status(base) if row.running}
    lease = _take_lease(base)
    try:
        rows = await api.up(base, brokers)
    except StackError as exc:
        _release(base, lease, {row.name for row in await api.status(base) if row.running} - before)
        pytest.fail(f"the local stack could not start: {exc}", pytrace=False)
    started = tuple(sorted({row.name for row in rows if row.running} - before))
    kafka = single_broker(base) if brokers == 1 else three_brokers(base)
    try:
        yield StackHandle(base, kafka, started)
    finally:
        _release(base, lease, set(started))


# Two test sessions may share one stack dir (two engineers, one tree). Each holds a lease while
# it runs; a session that ends while another still runs hands what it started over to it, and
# the last one out stops everything it was handed.


def _sessions(base: Settings) -> Path:
    path = Layout.of(base).run_dir / "sessions"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _take_lease(base: Settings) -> Path:
    lease = _sessions(base) / f"{os.getpid()}-{uuid.uuid4().hex[:6]}.lease"
    lease.write_text(f"{os.getpid()} {processes.start_ticks(os.getpid())}\n")
    return lease


def _others_alive(base: Settings, lease: Path) -> bool:
    for other in _sessions(base).glob("*.lease"):
        if other == lease:
            continue
        if processes.running(other) is not None:  # removes the lease of a dead session
            return True
    return False


def _release(base: Settings, lease: Path, started: set[str]) -> None:
    handover = _sessions(base) / "handover.names"
    lease.unlink(missing_ok=True)
    if _others_alive(base, lease):
        with handover.open("a") as names:
            names.writelines(f"{name}\n" for name in sorted(started))
        return
    if handover.exists():
        started |= set(handover.read_text().split())
        handover.unlink()
    api.stop_services(base, sorted(started))


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    """The environment's settings (RUNWAY_STACK_DIR etc. may move the stack)."""
    return load_settings()


@pytest.fixture(scope="session")
async def stack(stack_settings: Settings) -> AsyncIterator[StackHandle]:
    async for handle in _start(stack_settings, brokers=1):
        yield handle


@pytest.fixture(scope="session")
async def cluster(stack: StackHandle) -> AsyncIterator[StackHandle]:
    """The three-broker cluster (127.0.0.1:9192-9194), next to the session's stack."""
    async for handle in _start(stack.settings, brokers=3):
        yield handle


def _unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def settings(stack: StackHandle) -> Settings:
    """Per-test settings: unique topic prefix and app id, 4 partitions, topics created."""
    tag = _unique()
    settings = Settings(
        kafka_bootstrap=stack.kafka.bootstrap,
        topic_prefix=f"test-{tag}-",
        app_id=f"test-{tag}",
        partitions=4,
        **local_s3_credentials(),  # the stack's S3 stand-in; unset would mean the AWS chain
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture
async def cluster_settings(cluster: StackHandle) -> Settings:
    """Like `settings`, on the three-broker cluster with the production profile (RF 3, ISR 2)."""
    tag = _unique()
    settings = Settings(
        profile="production",
        kafka_bootstrap=cluster.kafka.bootstrap,
        topic_prefix=f"test-{tag}-",
        app_id=f"test-{tag}",
        partitions=4,
        **local_s3_credentials(),
    )
    await ensure_topics(settings)
    return settings
