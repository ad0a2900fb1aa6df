"""The registry's SQL store: SQLite by default, PostgreSQL through a DSN, optional read replica.

Synchronous SQLAlchemy Core: callers in async code (the API, the agents) run it in a thread.
Every write is an idempotent upsert, so a replayed staleness event or a retried retrain status
changes nothing the second time. Reads go to the read engine (a replica when configured), writes
to the primary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from config.settings import Settings
from contracts.ids import MAX_ID_BYTES
from registry import graph
from registry import schema as t
from registry.records import (
    RETRAIN_STATUSES,
    DependencyIn,
    Model,
    ModelIn,
    ParkedEvent,
    RetrainRequest,
    RetrainStep,
    StalenessRecord,
    Version,
    VersionIn,
)

Clock = Callable[[], int]
# columns that hold an id (contracts.ids): at least MAX_ID_BYTES characters wide
ID_COLUMNS = frozenset({"model_id", "version", "upstream", "downstream", "model_version"})


def wall_ms() -> int:
    return int(time.time() * 1000)


def database_url(dsn: str) -> str:
    """`postgresql://` DSNs use psycopg 3; SQLAlchemy URLs pass through unchanged."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix) :]
    return dsn


def default_dsn(settings: Settings) -> str:
    return f"sqlite:///{Path(settings.datadir) / 'registry.sqlite3'}"


def make_engine(dsn: str, timeout_s: float) -> Engine:
    url = sa.make_url(database_url(dsn))
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": timeout_s})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            # WAL: the API reads while the registry agent writes, from another process
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            cur.close()

        return engine
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        pool_timeout=timeout_s,
        connect_args={
            "connect_timeout": max(1, int(timeout_s)),
            "options": f"-c statement_timeout={int(timeout_s * 1000)}",
        },
    )


def _lost_schema_race(exc: BaseException) -> bool:
    """Another process created a table between our check and our CREATE."""
    if isinstance(exc, sa.exc.IntegrityError):  # PostgreSQL: a duplicate pg_type row
        return True
    return isinstance(exc, sa.exc.DBAPIError) and "already exists" in str(exc)


class Store:
    def __init__(self, write: Engine, read: Engine | None = None, clock: Clock = wall_ms) -> None:
        self.write = write
        self.read = read or write
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock = wall_ms) -> Store:
        dsn = settings.registry_dsn or default_dsn(settings)
        write = make_engine(dsn, settings.registry_db_timeout_s)
        read = (
            make_engine(settings.registry_read_dsn, settings.registry_db_timeout_s)
            if settings.registry_read_dsn
            else None
        )
        return cls(write, read, clock)

    def create_schema(self) -> None:
        """Idempotent. Two processes starting at once on a new database race between the
        check and the CREATE: PostgreSQL then raises an IntegrityError, SQLite an
        OperationalError "table ... already exists" (the demo's retrain agent died of it);
        the loser checks again (tables are made one at a time, so it may lose on the next
        one too: a few attempts), and finds the tables."""
        for attempt in Retrying(
            retry=retry_if_exception(_lost_schema_race), stop=stop_after_attempt(8), reraise=True
        ):
            with attempt:
                t.metadata.create_all(self.write, checkfirst=True)
        self._widen_episode()
        self._widen_ids()

    def _widen_episode(self) -> None:
        """PostgreSQL registries created while `retrain_requests.episode` was INTEGER cannot hold
        an episode (epoch ms); widen the column once (SQLite integers are 64-bit already)."""
        if self.write.dialect.name != "postgresql":
            return
        query = sa.text(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = 'retrain_requests' AND column_name = 'episode'"
        )
        with self.write.begin() as conn:
            if conn.execute(query).scalar() == "integer":
                conn.execute(
                    sa.text("ALTER TABLE retrain_requests ALTER COLUMN episode TYPE BIGINT")
                )

    def _widen_ids(self) -> None:
        """PostgreSQL counts VARCHAR(200) in characters and an id may have up to MAX_ID_BYTES:
        widen the id columns of registries created before (SQLite does not enforce lengths)."""
        if self.write.dialect.name != "postgresql":
            return
        columns = [
            (table.name, column.name)
            for table in t.metadata.sorted_tables
            for column in table.columns
            if column.name in ID_COLUMNS and isinstance(column.type, sa.String)
        ]
        query = sa.text(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND character_maximum_length < :width"
        )
        with self.write.begin() as conn:
            narrow = {tuple(r) for r in conn.execute(query, {"width": MAX_ID_BYTES})}
            for table, column in columns:
                if (table, column) in narrow:
                    conn.execute(
                        sa.text(
                            f'ALTER TABLE "{table}" ALTER COLUMN "{column}" '
                            f"TYPE VARCHAR({MAX_ID_BYTES})"
                        )
                    )

    def dispose(self) -> None:
        self.write.dispose()
        if self.read is not self.write:
            self.read.dispose()

    def ping(self) -> None:
        with self.read.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def _insert(self, table: sa.Table) -> Any:
        if self.write.dialect.name == "postgresql":
            return pg_insert(table)
        return sqlite_insert(table)

    # -- models and versions -------------------------------------------------------------------

    def upsert_model(self, model: ModelIn) -> Model:
        now = self.clock()
        values = model.model_dump()
        stmt = self._insert(t.models).values(**values, created_at=now, updated_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=["model_id"],
            set_={k: stmt.excluded[k] for k in ("task", "owner", "description", "updated_at")},
        )
        with self.write.begin() as conn:
            conn.execute(stmt)
            row = conn.execute(sa.select(t.models).where(t.models.c.model_id == model.model_id))
            return Model.model_validate(row.mappings().one())

    def _ensure_model(self, conn: sa.Connection, model_id: str, task: str | None) -> None:
        now = self.clock()
        stmt = self._insert(t.models).values(
            model_id=model_id, task=task, created_at=now, updated_at=now
        )
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["model_id"]))

    def get_model(self, model_id: str) -> Model | None:
        with self.read.connect() as conn:
            row = conn.execute(sa.select(t.models).where(t.models.c.model_id == model_id))
            found = row.mappings().first()
        return Model.model_validate(found) if found else None

    def list_models(self) -> list[Model]:
        with self.read.connect() as conn:
            rows = conn.execute(sa.select(t.models).order_by(t.models.c.model_id)).mappings()
            return [Model.model_validate(r) for r in rows]

    def upsert_version(self, model_id: str, version: VersionIn) -> Version:
        """Registers the model too when it is new (a version names its task)."""
        now = self.clock()
        values = {**version.model_dump(), "model_id": model_id, "created_at": now}
        stmt = self._insert(t.versions).values(**values)
        updated = ("task", "trained_at", "deployed_at", "baseline_metrics", "max_age_ms")
        stmt = stmt.on_conflict_do_update(
            index_elements=["model_id", "version"], set_={k: stmt.excluded[k] for k in updated}
        )
        with self.write.begin() as conn:
            self._ensure_model(conn, model_id, version.task)
            conn.execute(stmt)
            row = conn.execute(
                sa.select(t.versions).where(
                    t.versions.c.model_id == model_id, t.versions.c.version == version.version
                )
            )
            return Version.model_validate(row.mappings().one())

    def versions(self, model_id: str) -> list[Version]:
        with self.read.connect() as conn:
            rows = conn.execute(
                sa.select(t.versions)
                .where(t.versions.c.model_id == model_id)
                .order_by(t.versions.c.created_at, t.versions.c.version)
            ).mappings()
            return [Version.model_validate(r) for r in rows]

    # -- dependencies --------------------------------------------------------------------------

    def add_dependency(self, dep: DependencyIn) -> graph.Edge | None:
        """Returns the edge it replaced (None: a new edge), so that the caller refreshes only
        what changed."""
        d = t.dependencies.c
        stmt = self._insert(t.dependencies).values(**dep.model_dump(), created_at=self.clock())
        stmt = stmt.on_conflict_do_update(
            index_elements=["upstream", "downstream"],
            set_={"kind": stmt.excluded.kind, "downstream_kind": stmt.excluded.downstream_kind},
        )
        before = sa.select(d.upstream, d.downstream, d.kind, d.downstream_kind).where(
            d.upstream == dep.upstream, d.downstream == dep.downstream
        )
        with self.write.begin() as conn:
            row = conn.execute(before.with_for_update()).first()
            conn.execute(stmt)
        return graph.Edge(*row) if row else None

    def add_dependencies(self, deps: Iterable[DependencyIn]) -> None:
        rows = [{**d.model_dump(), "created_at": self.clock()} for d in deps]
        if not rows:
            return
        stmt = self._insert(t.dependencies).on_conflict_do_nothing(
            index_elements=["upstream", "downstream"]
        )
        with self.write.begin() as conn:
            conn.execute(stmt, rows)

    def edges(self) -> list[graph.Edge]:
        cols = t.dependencies.c
        with self.read.connect() as conn:
            rows = conn.execute(sa.select(cols.upstream, cols.downstream, cols.kind,
                                          cols.downstream_kind))  # fmt: skip
            return [graph.Edge(*r) for r in rows]

    def reachable_edges(self, node: str, direction: str) -> list[graph.Edge]:
        """The edges of the subgraph reachable from `node` (recursive CTE; UNION ends cycles)."""
        d = t.dependencies
        near, far = d.c.upstream, d.c.downstream
        if direction != "down":
            near, far = far, near
        seed = sa.select(sa.literal(node, type_=sa.String).label("node"))
        reach = seed.cte("reach", recursive=True)
        reach = reach.union(sa.select(far).join(reach, near == reach.c.node))
        stmt = sa.select(d.c.upstream, d.c.downstream, d.c.kind, d.c.downstream_kind).where(
            near.in_(sa.select(reach.c.node))
        )
        with self.read.connect() as conn:
            return [graph.Edge(*r) for r in conn.execute(stmt)]

    def impact(self, model_id: str) -> list[graph.Reached]:
        return graph.downstream(self.reachable_edges(model_id, "down"), model_id)

    def lineage(self, model_id: str) -> list[graph.Reached]:
        return graph.upstream(self.reachable_edges(model_id, "up"), model_id)

    def impacted(self, model_id: str) -> list[str]:
        """Downstream model ids of `model_id`, transitively: a staleness event's `impacted`."""
        return graph.impacted_models(self.impact(model_id))

    # -- staleness -----------------------------------------------------------------------------

    def record_staleness(self, event: Mapping[str, Any]) -> bool:
        """Record one staleness event; False if it was already recorded (a redelivery)."""
        rec = StalenessRecord.model_validate(dict(event))
        values = rec.model_dump()
        values["recorded_at"] = self.clock()
        stmt = self._insert(t.staleness).values(**values)
        stmt = stmt.on_conflict_do_nothing(
            index_elements=["model_id", "event_time", "emitted_at"]
        ).returning(t.staleness.c.id)
        with self.write.begin() as conn:
            return conn.execute(stmt).first() is not None

    def staleness_history(self, model_id: str, limit: int = 100) -> list[StalenessRecord]:
        s = t.staleness.c
        with self.read.connect() as conn:
            rows = conn.execute(
                sa.select(t.staleness)
                .where(s.model_id == model_id)
                .order_by(s.event_time.desc(), s.emitted_at.desc())
                .limit(limit)
            ).mappings()
            return [StalenessRecord.model_validate(r) for r in rows]

    def latest_staleness(self, model_id: str) -> StalenessRecord | None:
        found = self.staleness_history(model_id, limit=1)
        return found[0] if found else None

    def latest_staleness_by_model(
        self, model_ids: Iterable[str] | None = None
    ) -> dict[str, StalenessRecord]:
        """`latest_staleness` of every model (or of `model_ids`) in one query walking the
        (model_id, event_time) index, not one query per model: the fleet views read it on
        every refresh. A model without a verdict is absent."""
        s = t.staleness.c
        newest = sa.select(s.model_id, sa.func.max(s.event_time).label("event_time"))
        if model_ids is not None:
            newest = newest.where(s.model_id.in_(list(model_ids)))
        sub = newest.group_by(s.model_id).subquery()
        query = sa.select(t.staleness).join(
            sub, sa.and_(s.model_id == sub.c.model_id, s.event_time == sub.c.event_time)
        )
        out: dict[str, StalenessRecord] = {}
        with self.read.connect() as conn:
            for row in conn.execute(query).mappings():
                rec = StalenessRecord.model_validate(row)
                held = out.get(rec.model_id)
                if held is None or rec.emitted_at > held.emitted_at:  # same event time
                    out[rec.model_id] = rec
        return out

    def count_staleness(self, model_id: str) -> int:
        with self.read.connect() as conn:
            stmt = sa.select(sa.func.count()).where(t.staleness.c.model_id == model_id)
            return int(conn.execute(stmt).scalar_one())

    # -- retrain requests (written by the retrain agent) ---------------------------------------

    def record_retrain(
        self,
        request_id: str,
        model_id: str,
        model_version: str,
        episode: int,
        status: str,
        detail: str | None,
        at_ms: int,
    ) -> None:
        """Idempotent: the same (request_id, status, at_ms) twice is one history step; the
        request's current status is the step with the latest time, whatever the arrival order."""
        if status not in RETRAIN_STATUSES:
            raise ValueError(f"unknown retrain status {status!r}; one of {RETRAIN_STATUSES}")
        req = self._insert(t.retrain_requests).values(
            request_id=request_id, model_id=model_id, model_version=model_version,
            episode=episode, status=status, detail=detail, created_at=at_ms, updated_at=at_ms,
        )  # fmt: skip
        current = t.retrain_requests.c
        req = req.on_conflict_do_update(
            index_elements=["request_id"],
            set_={
                "status": req.excluded.status,
                "detail": req.excluded.detail,
                "updated_at": req.excluded.updated_at,
            },
            where=req.excluded.updated_at >= current.updated_at,
        )
        step = self._insert(t.retrain_history).values(
            request_id=request_id, status=status, at=at_ms, detail=detail
        )
        step = step.on_conflict_do_nothing(index_elements=["request_id", "status", "at"])
        with self.write.begin() as conn:
            conn.execute(req)
            conn.execute(
                sa.update(t.retrain_requests)
                .where(current.request_id == request_id, current.created_at > at_ms)
                .values(created_at=at_ms)
            )
            conn.execute(step)

    def retrain_requests(self, model_id: str) -> list[RetrainRequest]:
        r, h = t.retrain_requests.c, t.retrain_history.c
        with self.read.connect() as conn:
            reqs = (
                conn.execute(
                    sa.select(t.retrain_requests)
                    .where(r.model_id == model_id)
                    .order_by(r.created_at, r.request_id)
                )
                .mappings()
                .all()
            )
            ids = [q["request_id"] for q in reqs]
            steps: dict[str, list[RetrainStep]] = {i: [] for i in ids}
            if ids:
                for row in conn.execute(
                    sa.select(t.retrain_history)
                    .where(h.request_id.in_(ids))
                    .order_by(h.at, h.status)
                ).mappings():
                    steps[row["request_id"]].append(RetrainStep.model_validate(row))
        return [RetrainRequest.model_validate({**q, "history": steps[q["request_id"]]})
                for q in reqs]  # fmt: skip

    def parked_retrains(self, limit: int = 100) -> list[RetrainRequest]:
        """Every model's requests whose current status is `parked`, latest first (what needs a
        person: the DLQ gave up on them; `detail` holds the last error)."""
        r = t.retrain_requests.c
        with self.read.connect() as conn:
            models = conn.execute(
                sa.select(r.model_id).where(r.status == "parked").group_by(r.model_id)
            ).scalars().all()  # fmt: skip
        found = [q for m in models for q in self.retrain_requests(m) if q.status == "parked"]
        return sorted(found, key=lambda q: (-q.updated_at, q.request_id))[:limit]

    # -- parked events (written by consumers the database refused a record of) -----------------

    def park_event(self, parked: ParkedEvent) -> bool:
        """Idempotent by the event's place (topic, partition, offset, position): a redelivered
        record parks once. False if it was parked already."""
        stmt = self._insert(t.parked_events).values(**parked.model_dump())
        stmt = stmt.on_conflict_do_nothing(
            index_elements=["source_topic", "source_partition", "source_offset", "position"]
        ).returning(t.parked_events.c.id)
        with self.write.begin() as conn:
            return conn.execute(stmt).first() is not None

    def parked_events(self, model_id: str | None = None, limit: int = 100) -> list[ParkedEvent]:
        """Oldest first (in the order they were consumed), optionally of one model."""
        p = t.parked_events.c
        query = sa.select(t.parked_events)
        if model_id is not None:
            query = query.where(p.model_id == model_id)
        query = query.order_by(
            p.source_topic, p.source_partition, p.source_offset, p.position
        ).limit(limit)
        with self.read.connect() as conn:
            return [ParkedEvent.model_validate(row) for row in conn.execute(query).mappings()]
