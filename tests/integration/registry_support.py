"""Registry test support: a fresh database per test on SQLite or on the stack's PostgreSQL."""

from __future__ import annotations

import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from config.settings import Settings
from registry.bench import scratch_database
from stack import api
from stack.postgres import PostgresService
from stack.redis import RedisService
from stack.service import Service


def fresh_postgres_db(base_url: str) -> tuple[str, str]:
    """Create an empty database on the server of `base_url`; returns (dsn, name). For tests that
    hand the database to subprocesses across a try/finally; a `with` block can use
    `registry.bench.scratch_database` instead."""
    name = f"reg_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base_url.rsplit("/", 1)[0] + f"/{name}", name


def drop_postgres_db(base_url: str, name: str) -> None:
    with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def registry_dsn(request: pytest.FixtureRequest, stack: object) -> Iterator[str]:
    server = Settings().postgres_url if request.param == "postgres" else None
    with scratch_database(server) as dsn:
        yield dsn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OwnService:
    """A PostgreSQL or Redis of this test's own (its own stack dir and port), so stopping it
    is a real outage that nobody else shares."""

    settings: Settings
    service: Service

    async def start(self) -> None:
        await api.start_services(self.settings, [self.service])

    def stop(self) -> None:
        assert api.stop_service(self.settings, self.service.name) is not None


@pytest.fixture
async def own_stack_dir() -> AsyncIterator[Path]:
    # not pytest's tmp_path: PostgreSQL runs as `postgres`, which cannot enter /tmp/pytest-of-root
    root = Path(tempfile.mkdtemp(prefix="runway-reg-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def own_settings(root: Path) -> Settings:
    return Settings(
        stack_dir=root,
        stack_postgres_port=free_port(),
        stack_redis_port=free_port(),
        stack_up_timeout_s=60.0,
    )


@pytest.fixture
async def own_postgres(own_stack_dir: Path) -> AsyncIterator[OwnService]:
    settings = own_settings(own_stack_dir)
    own = OwnService(settings, PostgresService(settings))
    await own.start()
    yield own
    api.stop_service(settings, own.service.name)


@pytest.fixture
async def own_redis(own_stack_dir: Path) -> AsyncIterator[OwnService]:
    settings = own_settings(own_stack_dir)
    own = OwnService(settings, RedisService(settings))
    await own.start()
    yield own
    api.stop_service(settings, own.service.name)
