"""The registry agent's write of one event: recorded; retried while the database is away (sleep
injected, so no waiting); parked with its error when the database refuses it for good, and the
next event recorded. On a real SQLite registry whose trigger refuses one model."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import psycopg.errors
import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest
from sqlalchemy import exc as sa_exc

from config.settings import Settings
from registry.agent import Decoded, RegistryAgent, Source, decode_staleness
from registry.store import Store, make_engine

EVENT = {
    "schema_version": 1, "model_id": "m1", "model_version": "v3", "state": "STALE",
    "score": 0.91, "basis": ["drift", "age"], "uncertainty": 0.35, "reason": "score drift",
    "event_time": 1_700_000_000_000, "emitted_at": 1_700_000_100_000,
    "metrics": {"psi": 0.27}, "impacted": ["m2"],
}  # fmt: skip
PARKED_AT = 1_800_000_000_000
REFUSE = (
    "CREATE TRIGGER refuse BEFORE INSERT ON staleness WHEN NEW.model_id = 'refused' "
    "BEGIN SELECT RAISE(ABORT, 'refused by policy'); END"
)


class FlakyStore(Store):
    """A real store whose staleness writes first raise the given errors."""

    errors: list[Exception]

    def record_staleness(self, event: Any) -> bool:
        if self.errors:
            raise self.errors.pop(0)
        return super().record_staleness(event)


@pytest.fixture
def store(tmp_path: Path) -> FlakyStore:
    s = FlakyStore(make_engine(f"sqlite:///{tmp_path / 'r.sqlite3'}", 3.0), clock=lambda: PARKED_AT)
    s.errors = []
    s.create_schema()
    with s.write.begin() as conn:  # the database's own rule: model "refused" may not be recorded
        conn.execute(sa.text(REFUSE))
    return s


def agent(store: Store, sleeps: list[float]) -> RegistryAgent:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return RegistryAgent(Settings(_env_file=None), store, sleep)  # type: ignore[call-arg]


def one(event: dict[str, Any]) -> Decoded:
    (item,), _ = decode_staleness(orjson.dumps(event))
    return item


def metric(a: RegistryAgent, line: str) -> float:
    found = [
        r for r in generate_latest(a.metrics).decode().splitlines() if r.startswith(line + " ")
    ]
    return float(found[0].split()[-1]) if found else 0.0


async def test_a_refused_event_is_parked_and_the_next_recorded(store: FlakyStore) -> None:
    sleeps: list[float] = []
    a = agent(store, sleeps)
    refused = {**EVENT, "model_id": "refused"}
    batch = [EVENT, refused, {**EVENT, "emitted_at": 1_700_000_200_000}]
    items, bad = decode_staleness(orjson.dumps(batch))
    assert bad == []
    results = [await a.write(Source("staleness", 3, 41), item) for item in items]
    assert results == [True, False, True] and sleeps == []  # refused at once, never retried
    assert [h.emitted_at for h in store.staleness_history("m1")] == [1_700_000_200_000,
                                                                    1_700_000_100_000]  # fmt: skip
    assert store.staleness_history("refused") == []
    (parked,) = store.parked_events()
    assert parked.model_dump() == {
        "source_topic": "staleness", "source_partition": 3, "source_offset": 41, "position": 1,
        "model_id": "refused", "value_b64": base64.b64encode(orjson.dumps(refused)).decode(),
        "error_class": "sqlite3.IntegrityError", "error_code": "SQLITE_CONSTRAINT_TRIGGER",
        "error": "refused by policy", "parked_at": PARKED_AT,
    }  # fmt: skip
    assert store.parked_events(model_id="m1") == []
    assert (a.recorded, a.parked) == (2, 1)
    assert metric(a, 'runway_registry_agent_parked_total{reason="IntegrityError"}') == 1
    assert metric(a, "runway_registry_agent_recorded_total") == 2

    # redelivered (a crash before the commit): parked once, recorded once
    again = [await a.write(Source("staleness", 3, 41), item) for item in items]
    assert again == [False, False, False]
    assert len(store.parked_events()) == 1 and store.count_staleness("m1") == 2


async def test_a_one_event_record_parks_as_position_minus_one(store: FlakyStore) -> None:
    a = agent(store, [])
    raw = orjson.dumps({**EVENT, "model_id": "refused"})
    assert await a.write(Source("staleness", 0, 7), one({**EVENT, "model_id": "refused"})) is False
    (parked,) = store.parked_events(model_id="refused")
    assert (parked.position, base64.b64decode(parked.value_b64)) == (-1, raw)


async def test_a_restarting_database_is_retried_and_nothing_parked(store: FlakyStore) -> None:
    down = sa_exc.OperationalError("INSERT ...", {}, psycopg.errors.AdminShutdown("terminating"))
    locked = sa_exc.OperationalError("INSERT ...", {}, psycopg.errors.CannotConnectNow("starting"))
    store.errors = [down, locked]
    sleeps: list[float] = []
    a = agent(store, sleeps)
    assert await a.write(Source("staleness", 0, 0), one(EVENT)) is True
    assert sleeps == [0.2, 0.4]  # capped exponential backoff: 0.2 s, doubling, at most 5 s
    assert store.parked_events() == [] and store.count_staleness("m1") == 1
    assert metric(a, "runway_registry_agent_db_retries_total") == 2


async def test_a_bug_is_not_parked(store: FlakyStore) -> None:
    store.errors = [KeyError("model_id")]
    with pytest.raises(KeyError):
        await agent(store, []).write(Source("staleness", 0, 0), one(EVENT))
    assert store.parked_events() == []
