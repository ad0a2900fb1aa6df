"""The retrain agent's status writes: retried while the registry database is away, skipped (and
counted) when the database refuses the row for good, so a request never blocks on its row."""

from __future__ import annotations

import psycopg.errors
from prometheus_client import generate_latest
from sqlalchemy import exc as sa_exc

from config.settings import Settings
from retrain.agent import RetrainAgent
from retrain.breaker import BreakerConfig, CircuitBreaker
from retrain.dispatch import Answer, Dispatcher, RetryPolicy
from retrain.messages import RetrainRequest

REQUEST = RetrainRequest(
    request_id="r-1", model_id="m", model_version="1", episode=5, score=0.9, reason="stale"
)
TOO_LONG = sa_exc.DataError(
    "INSERT INTO retrain_requests ...", {}, psycopg.errors.StringDataRightTruncation("too long")
)
RESTARTING = sa_exc.OperationalError(
    "INSERT INTO retrain_requests ...", {}, psycopg.errors.AdminShutdown("terminating")
)


class Recorder:
    """Raises its script's errors in turn, then records."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.rows: list[tuple[str, str]] = []

    def record_retrain(
        self, request_id: str, model_id: str, model_version: str, episode: int, status: str,
        detail: str | None, at_ms: int,
    ) -> None:  # fmt: skip
        if self.errors:
            raise self.errors.pop(0)
        self.rows.append((request_id, status))


def agent(recorder: Recorder, sleeps: list[float]) -> RetrainAgent:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def never_called(request: RetrainRequest) -> Answer:
        raise AssertionError("no call expected")

    breaker = CircuitBreaker(BreakerConfig(), lambda: 0.0)
    dispatcher = Dispatcher(breaker, never_called, RetryPolicy(), lambda lo, hi: hi, sleep)
    settings = Settings(_env_file=None, retrain_poll_s=0.25)  # type: ignore[call-arg]
    return RetrainAgent(settings, dispatcher, recorder, lambda: 1_000, sleep)


def unrecorded(a: RetrainAgent, status: str) -> float:
    text = generate_latest(a.telemetry.registry).decode()
    line = f'runway_retrain_unrecorded_total{{status="{status}"}} '
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


async def test_a_restarting_database_is_retried_until_the_row_is_written() -> None:
    recorder, sleeps = Recorder([RESTARTING, RESTARTING]), list[float]()
    a = agent(recorder, sleeps)
    await a._record(REQUEST, "queued", "stale")
    assert (recorder.rows, sleeps, unrecorded(a, "queued")) == ([("r-1", "queued")], [0.25] * 2, 0)


async def test_a_row_the_database_refuses_is_skipped_at_once_and_counted() -> None:
    recorder, sleeps = Recorder([TOO_LONG]), list[float]()
    a = agent(recorder, sleeps)
    await a._record(REQUEST, "queued", "stale")
    assert (recorder.rows, sleeps, unrecorded(a, "queued")) == ([], [], 1.0)
    await a._record(REQUEST, "started", "{}")  # the next status goes in as usual
    assert recorder.rows == [("r-1", "started")]
