"""Transient or permanent, judged on the drivers' real exceptions: sqlite3's raised by a real
database file, psycopg's own classes (the PostgreSQL ones are raised for real in
tests/integration/test_registry_agent.py), wrapped by SQLAlchemy as the store sees them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import psycopg.errors as pg
import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from registry.dberrors import describe, is_database_error, is_transient, storable


def wrapped(orig: Exception) -> sa_exc.StatementError:
    """As SQLAlchemy raises a driver's error: the matching wrapper class around it."""
    return sa_exc.DBAPIError.instance("INSERT ...", {}, orig, psycopg.Error)


@pytest.mark.parametrize(
    "orig",
    [
        psycopg.OperationalError("connection failed: Connection refused"),  # no SQLSTATE
        psycopg.OperationalError("consuming input failed: server closed the connection"),
        pg.AdminShutdown("terminating connection due to administrator command"),  # 57P01
        pg.CrashShutdown("crash"),  # 57P02
        pg.CannotConnectNow("the database system is starting up"),  # 57P03
        pg.QueryCanceled("canceling statement due to statement timeout"),  # 57014
        pg.SerializationFailure("could not serialize access"),  # 40001
        pg.DeadlockDetected("deadlock detected"),  # 40P01
        pg.TooManyConnections("too many clients"),  # 53300
        pg.DiskFull("no space left on device"),  # 53100
        pg.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),  # 25006
    ],
    ids=lambda e: type(e).__name__,
)
def test_postgres_transient(orig: Exception) -> None:
    assert is_database_error(wrapped(orig)) and is_transient(wrapped(orig))
    assert is_transient(orig)  # unwrapped too


@pytest.mark.parametrize(
    "orig",
    [
        pg.CheckViolation("new row violates check constraint"),  # 23514
        pg.UniqueViolation("duplicate key value"),  # 23505
        pg.NotNullViolation("null value in column"),  # 23502
        pg.StringDataRightTruncation("value too long for type character varying(200)"),  # 22001
        pg.NumericValueOutOfRange("bigint out of range"),  # 22003
        pg.InvalidTextRepresentation("invalid input syntax for type json"),  # 22P02
        psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
        pg.UndefinedTable("relation does not exist"),  # 42P01
        pg.InsufficientPrivilege("permission denied"),  # 42501
        pg.InternalError_("internal error"),  # XX000
        psycopg.InterfaceError("the cursor is closed"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_postgres_permanent(orig: Exception) -> None:
    assert is_database_error(wrapped(orig)) and not is_transient(wrapped(orig))


def test_a_disconnect_sqlalchemy_saw_and_a_pool_timeout_are_transient() -> None:
    lost = sa_exc.DBAPIError.instance(
        "SELECT 1", {}, psycopg.DataError("x"), psycopg.Error, connection_invalidated=True
    )
    assert is_transient(lost)
    assert is_transient(sa_exc.TimeoutError("QueuePool limit reached"))


@pytest.fixture
def db(tmp_path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'r.sqlite3'}", connect_args={"timeout": 0.01})
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        conn.execute(sa.text("CREATE TRIGGER refuse BEFORE INSERT ON t WHEN NEW.x = 7 "
                             "BEGIN SELECT RAISE(ABORT, 'seven is refused'); END"))  # fmt: skip
    return engine


def raised(engine: sa.Engine, sql: str, params: dict[str, object] | None = None) -> Exception:
    with pytest.raises(Exception) as info, engine.begin() as conn:
        conn.execute(sa.text(sql), params or {})
    assert isinstance(info.value, Exception)
    return info.value


def test_sqlite_busy_is_transient(db: sa.Engine, tmp_path: Path) -> None:
    holder = sqlite3.connect(tmp_path / "r.sqlite3", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    try:
        busy = raised(db, "INSERT INTO t VALUES (1)")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert isinstance(busy, sa_exc.OperationalError) and is_transient(busy)
    assert describe(busy).code == "SQLITE_BUSY"


def test_sqlite_cannot_open_is_transient(tmp_path: Path) -> None:
    gone = sa.create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'r.sqlite3'}")
    assert is_transient(raised(gone, "SELECT 1"))


def test_sqlite_refusals_are_permanent(db: sa.Engine) -> None:
    trigger = raised(db, "INSERT INTO t VALUES (7)")
    assert isinstance(trigger, sa_exc.IntegrityError) and not is_transient(trigger)
    info = describe(trigger)
    assert (info.name, info.code, info.message, info.reason) == (
        "sqlite3.IntegrityError", "SQLITE_CONSTRAINT_TRIGGER", "seven is refused", "IntegrityError",
    )  # fmt: skip
    no_table = raised(db, "INSERT INTO nope VALUES (1)")
    assert not is_transient(no_table) and describe(no_table).code == "SQLITE_ERROR"
    too_big = raised(db, "INSERT INTO t VALUES (:x)", {"x": 2**64})  # refused while binding
    assert isinstance(too_big, OverflowError)
    assert is_database_error(too_big) and not is_transient(too_big)
    assert describe(too_big).name == "OverflowError"


def test_describe_keeps_the_driver_s_words_not_the_statement() -> None:
    info = describe(wrapped(pg.CheckViolation('new row violates check constraint "c"')))
    assert (info.name, info.code, info.reason) == (
        "psycopg.errors.CheckViolation", "23514", "CheckViolation",
    )  # fmt: skip
    assert info.message == 'new row violates check constraint "c"'  # no "INSERT ..." echo
    assert storable("a\x00b") == "a\\x00b" and len(storable("x" * 5000)) == 2000


def test_bugs_are_not_database_errors() -> None:
    assert not is_database_error(KeyError("model_id"))
    assert not is_database_error(ValueError("bad"))
