"""A retrain request's episode is an epoch-ms event time: PostgreSQL must hold it (int4 cannot),
also in a registry created before the column was BIGINT (found by `runway demo`)."""

from __future__ import annotations

import sqlalchemy as sa

from config.settings import Settings
from registry.bench import scratch_database
from registry.store import Store, make_engine
from tests.integration.registry_support import registry_dsn  # noqa: F401  (fixture)

EPISODE = 1_764_270_000_000  # an event time in epoch ms, far above 2**31


def test_an_epoch_ms_episode_is_recorded(registry_dsn: str) -> None:  # noqa: F811
    store = Store(make_engine(registry_dsn, 3.0))
    try:
        store.create_schema()
        store.record_retrain("r1", "fraud", "v1", EPISODE, "started", "run 1", 200)
        [request] = store.retrain_requests("fraud")
        assert (request.request_id, request.episode, request.status) == ("r1", EPISODE, "started")
    finally:
        store.dispose()


def test_an_old_postgres_registry_is_widened(stack: object) -> None:
    with scratch_database(Settings().postgres_url) as dsn:
        store = Store(make_engine(dsn, 3.0))
        try:
            store.create_schema()
            with store.write.begin() as conn:  # as the registry was created before the fix
                conn.execute(
                    sa.text("ALTER TABLE retrain_requests ALTER COLUMN episode TYPE INTEGER")
                )
            store.create_schema()
            store.create_schema()  # idempotent
            store.record_retrain("r1", "fraud", "v1", EPISODE, "queued", None, 100)
            assert [r.episode for r in store.retrain_requests("fraud")] == [EPISODE]
        finally:
            store.dispose()
