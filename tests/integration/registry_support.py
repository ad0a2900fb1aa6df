"""Registry test support: a fresh database per test on SQLite or on the stack's PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from config.settings import Settings


def fresh_postgres_db(base_url: str) -> tuple[str, str]:
    """Create an empty database on the server of `base_url`; returns (dsn, name)."""
    name = f"reg_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base_url.rsplit("/", 1)[0] + f"/{name}", name


def drop_postgres_db(base_url: str, name: str) -> None:
    with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def registry_dsn(request: pytest.FixtureRequest, stack: object, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite3'}"
        return
    base = Settings().postgres_url
    dsn, name = fresh_postgres_db(base)
    try:
        yield dsn
    finally:
        drop_postgres_db(base, name)
