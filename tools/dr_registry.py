"""The drill's registry: a database of its own on the stack's PostgreSQL (the primary region's
registry), a private streaming standby of it (`stack/standby.py`, `pg_basebackup -R`, on the
drill's own port and directory), the promotion (`registry/standby.py`, `pg_promote`).

Why a database of its own: the stack's PostgreSQL is shared, so the drill neither writes its
models into the stack's `runway` database nor stops that server; the loss of the primary's
registry is simulated by promoting the standby and using only it from then on. The registry
writes made before the kill (the drill's models, their versions and a dependency chain) must all
be found in the promoted standby: the registry's share of the RPO.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from config.settings import Settings
from registry.records import DependencyIn, ModelIn, VersionIn
from registry.standby import promote
from registry.store import Store, make_engine
from registry.wiring import build_registry
from stack import standby as pg_standby
from stack.plan import HOST, postgres_target
from tools.dr_plan import DrillLayout, registry_database

DB_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RegistryPair:
    database: str
    primary_dsn: str
    standby_dsn: str
    models: tuple[str, ...]


def _postgres_admin_dsn(settings: Settings) -> str:
    return f"postgresql://{postgres_target(settings).user}@{HOST}:{settings.stack_postgres_port}/postgres"


def _admin(settings: Settings, sql: str) -> None:
    engine = sa.create_engine(_postgres_admin_dsn(settings), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(sql))
    finally:
        engine.dispose()


def _store(dsn: str) -> Store:
    return Store(make_engine(dsn, DB_TIMEOUT_S))


def _register(dsn: str, models: Sequence[tuple[str, str]], version: str) -> None:
    """The drill's models, a version each and the chain model 0 -> 1 -> ..."""
    store = _store(dsn)
    try:
        store.create_schema()
        for model_id, task in models:
            store.upsert_model(ModelIn(model_id=model_id, task=task))  # type: ignore[arg-type]
            store.upsert_version(model_id, VersionIn(version=version, task=task))  # type: ignore[arg-type]
        ids = [model_id for model_id, _ in models]
        store.add_dependencies(
            DependencyIn(upstream=a, downstream=b) for a, b in zip(ids, ids[1:], strict=False)
        )
    finally:
        store.dispose()


def model_ids(dsn: str) -> set[str]:
    store = _store(dsn)
    try:
        return {model.model_id for model in store.list_models()}
    finally:
        store.dispose()


async def prepare(
    layout: DrillLayout, models: Sequence[tuple[str, str]], version: str, timeout_s: float = 120
) -> RegistryPair:
    """Create the run's database, its standby, write the models and wait until they stream."""
    primary, standby = layout.primary.settings, layout.standby.settings
    assert primary.registry_dsn is not None and standby.registry_dsn is not None
    pair = RegistryPair(
        database=registry_database(layout.run),
        primary_dsn=primary.registry_dsn,
        standby_dsn=standby.registry_dsn,
        models=tuple(model_id for model_id, _ in models),
    )
    await asyncio.to_thread(_admin, layout.stack, f'CREATE DATABASE "{pair.database}"')
    await pg_standby.up(layout.stack)  # its base backup holds the (empty) database
    await asyncio.to_thread(_register, pair.primary_dsn, models, version)
    deadline = time.monotonic() + timeout_s
    while not set(pair.models) <= await asyncio.to_thread(_try_ids, pair.standby_dsn):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the registry standby did not receive the models in {timeout_s}s")
        await asyncio.sleep(0.5)
    return pair


def _try_ids(dsn: str) -> set[str]:
    try:
        return model_ids(dsn)
    except sa.exc.SQLAlchemyError:  # the schema's creation not replayed yet
        return set()


async def fail_over(pair: RegistryPair, region: Settings) -> tuple[float, int]:
    """Promote the standby, then start the region's registry as its API does (cache warmed);
    (seconds the promotion took, models of the primary missing from the promoted standby)."""
    promotion = await asyncio.to_thread(promote, pair.standby_dsn)
    missing = set(pair.models) - await asyncio.to_thread(model_ids, pair.standby_dsn)
    registry = build_registry(region)
    try:
        await asyncio.to_thread(registry.warm_cache)
    finally:
        registry.store.dispose()
    return promotion.seconds, len(missing)


async def teardown(stack: Settings, run: str) -> None:
    """Stop and delete the run's standby, drop its database on the stack's PostgreSQL."""
    await asyncio.to_thread(pg_standby.down, stack, True)
    database = registry_database(run)
    await asyncio.to_thread(_admin, stack, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
