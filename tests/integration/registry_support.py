"""Registry test support: a fresh database per test on SQLite or on the stack's PostgreSQL."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from config.settings import Settings
from registry.bench import scratch_database
from stack import api
from stack.postgres import PostgresService
from stack.processes import free_port
from stack.redis import RedisService
from stack.service import Service


@pytest.fixture
def scratch_postgres(stack: object) -> Iterator[str]:
    """A DSN of a fresh database on the stack's PostgreSQL, dropped after the test."""
    with scratch_database(Settings().postgres_url) as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", "postgres"])
def registry_dsn(request: pytest.FixtureRequest, stack: object) -> Iterator[str]:
    server = Settings().postgres_url if request.param == "postgres" else None
    with scratch_database(server) as dsn:
        yield dsn


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
