"""Which registry database errors are worth retrying, and how to describe one that is not. Pure.

A consumer that writes to the database (the registry agent, the retrain agent's status writes)
must tell "the database is away, try again" from "the database refuses this row": retrying the
first loses nothing, retrying the second blocks its partition forever. The verdict comes from
the driver's own exception (SQLAlchemy's `DBAPIError.orig`), never from message text.

Transient (retried):
- SQLAlchemy saw a disconnect (`connection_invalidated`), its pool timed out (`TimeoutError`)
  or a pre-ping failed (`DisconnectionError`).
- psycopg 3: `OperationalError` and its subclasses, i.e. no connection or a lost one (no
  SQLSTATE, or class 08), the server shutting down or starting (57P01 admin shutdown, 57P02
  crash shutdown, 57P03 cannot connect now), a statement timeout or cancel (57014), deadlock and
  serialization failures (class 40), insufficient resources such as disk full or too many
  connections (class 53), a lock not available (55P03), I/O and system errors (class 58); plus
  `ReadOnlySqlTransaction` (25006, an `InternalError`): a write that reached a standby during a
  failover.
- sqlite3: by the primary result code (Python 3.11 exposes it as `sqlite_errorcode`): BUSY and
  LOCKED (another writer), NOMEM, INTERRUPT, IOERR, FULL, CANTOPEN, PROTOCOL. A sqlite3
  `OperationalError` without a code (e.g. raised while connecting) counts as transient too.

Permanent (the row is refused; retrying gives the same answer):
- psycopg: `IntegrityError` (class 23: not null, unique, check, foreign key), `DataError`
  (class 22: a value out of range, too long for its column, text with a NUL byte, invalid JSON),
  `ProgrammingError` (class 42: undefined table or column, no privilege), `NotSupportedError`,
  `InterfaceError`, and every other `InternalError`.
- sqlite3: every other code, e.g. CONSTRAINT (a trigger's `RAISE(ABORT)`, a NOT NULL), TOOBIG,
  MISMATCH, RANGE, and ERROR (SQL error, no such table).
- `OverflowError`: sqlite3 refuses an integer beyond 64 bits while binding it, outside DB-API.
- Any other SQLAlchemy error (a statement that cannot be compiled or bound).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import psycopg
import psycopg.errors
from sqlalchemy import exc as sa_exc

# Primary sqlite3 result codes that a later attempt can get past.
SQLITE_TRANSIENT = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_INTERRUPT,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)

MESSAGE_LIMIT = 2000


def is_database_error(exc: BaseException) -> bool:
    """Raised by the database or its driver (either verdict), not by a bug of ours."""
    return isinstance(exc, sa_exc.SQLAlchemyError | psycopg.Error | sqlite3.Error | OverflowError)


def driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception under SQLAlchemy's wrapper (the exception itself if none)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        return exc.orig
    return exc


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    cause = driver_error(exc)
    if isinstance(cause, psycopg.Error):
        return isinstance(cause, psycopg.OperationalError | psycopg.errors.ReadOnlySqlTransaction)
    if isinstance(cause, sqlite3.Error):
        code = getattr(cause, "sqlite_errorcode", None)
        if code is None:
            return isinstance(cause, sqlite3.OperationalError)
        return code & 0xFF in SQLITE_TRANSIENT
    return False


@dataclass(frozen=True)
class ErrorInfo:
    """What a parked row keeps of the error: always storable (no NUL, bounded length)."""

    name: str  # the driver's class, e.g. "psycopg.errors.CheckViolation"
    code: str | None  # PostgreSQL's SQLSTATE or sqlite3's result code name
    message: str

    @property
    def reason(self) -> str:
        """A metric label: the class's own name (a small, fixed set)."""
        return self.name.rsplit(".", 1)[-1]


def describe(exc: BaseException) -> ErrorInfo:
    """The driver's error without SQLAlchemy's echo of the statement and its parameters (which
    would carry the refused value back into the database)."""
    cause = driver_error(exc)
    kind = type(cause)
    module = kind.__module__
    name = kind.__name__ if module == "builtins" else f"{module}.{kind.__name__}"
    code = getattr(cause, "sqlstate", None) or getattr(cause, "sqlite_errorname", None)
    return ErrorInfo(name, code, storable(str(cause) or name))


def storable(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Text any of the databases accepts: NUL spelled out (PostgreSQL refuses it), bounded."""
    text = text.replace("\x00", "\\x00")
    return text if len(text) <= limit else text[: limit - 1] + "…"
