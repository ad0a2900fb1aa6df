"""Promoting a PostgreSQL registry standby, and what it says of its replication.

Why promotion is SQL (`pg_promote`) and not `pg_ctl promote`: SQL needs only the standby's DSN,
the same on a laptop, a VM or a managed server, while `pg_ctl` needs its data directory and its
operating-system user. The command waits until the server has left recovery, so whatever runs
next (`runway validate-failover`, the registry's processes pointed at it) finds a primary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from config.settings import Settings
from registry.store import make_engine
from stack.plan import HOST, postgres_target


def standby_dsn(settings: Settings) -> str:
    """The local standby's DSN (`runway registry-standby`): the stack's database on its port."""
    target = postgres_target(settings)
    return f"postgresql://{target.user}@{HOST}:{settings.registry_standby_port}/{target.database}"


@dataclass(frozen=True)
class Replication:
    """A server's replication as it reports it."""

    in_recovery: bool  # True: a standby
    replay_lag_s: float | None  # now - the last replayed transaction's commit time (standby)
    receive_lsn: str | None
    replay_lsn: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "in_recovery": self.in_recovery,
            "replay_lag_s": None if self.replay_lag_s is None else round(self.replay_lag_s, 3),
            "receive_lsn": self.receive_lsn,
            "replay_lsn": self.replay_lsn,
        }


def _engine(dsn: str, timeout_s: float) -> sa.Engine:
    return make_engine(dsn, timeout_s).execution_options(isolation_level="AUTOCOMMIT")


def replication(dsn: str, timeout_s: float = 5.0) -> Replication:
    engine = _engine(dsn, timeout_s)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT pg_is_in_recovery(), "
                    "EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8, "
                    "pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text"
                )
            ).one()
    finally:
        engine.dispose()
    return Replication(bool(row[0]), row[1], row[2], row[3])


@dataclass(frozen=True)
class Promotion:
    dsn: str  # without its password
    was_standby: bool  # False: the server was a primary already (nothing done)
    seconds: float  # from the request until the server accepted writes

    def as_json(self) -> dict[str, object]:
        return {"dsn": self.dsn, "promoted": self.was_standby, "seconds": round(self.seconds, 3)}


def shown_dsn(dsn: str) -> str:
    """The DSN without its password, for output."""
    return sa.make_url(dsn).render_as_string(hide_password=True)


def promote(dsn: str, wait_s: float = 60.0, timeout_s: float = 5.0) -> Promotion:
    """Promote the standby at `dsn` and return once it accepts writes (idempotent).

    Raises RuntimeError when it has not left recovery within `wait_s`.
    """
    started = time.monotonic()
    engine = _engine(dsn, wait_s + timeout_s)  # its statement timeout must outlast the wait
    shown = shown_dsn(dsn)
    try:
        with engine.connect() as conn:
            if not conn.execute(sa.text("SELECT pg_is_in_recovery()")).scalar_one():
                return Promotion(shown, False, time.monotonic() - started)
            done = conn.execute(
                sa.text("SELECT pg_promote(true, :wait)"), {"wait": max(1, int(wait_s))}
            ).scalar_one()
            if not done or conn.execute(sa.text("SELECT pg_is_in_recovery()")).scalar_one():
                raise RuntimeError(f"{shown} did not finish its promotion in {wait_s:.0f} s")
    finally:
        engine.dispose()
    return Promotion(shown, True, time.monotonic() - started)
