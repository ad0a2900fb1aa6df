"""The registry's tables, created idempotently on start (SQLite and PostgreSQL alike).

Times are integer epoch milliseconds, like every Runway message. JSON columns hold the free-form
parts (baseline metrics, a staleness event's metrics and lists) so adding a metric needs no
migration.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

models = sa.Table(
    "models",
    metadata,
    sa.Column("model_id", sa.String(200), primary_key=True),
    sa.Column("task", sa.String(32), nullable=True),
    sa.Column("owner", sa.String(200), nullable=True),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("model_id", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(200), primary_key=True),
    sa.Column("task", sa.String(32), nullable=False),
    sa.Column("trained_at", sa.BigInteger, nullable=True),
    sa.Column("deployed_at", sa.BigInteger, nullable=True),
    sa.Column("baseline_metrics", sa.JSON, nullable=False),
    sa.Column("max_age_ms", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

dependencies = sa.Table(
    "dependencies",
    metadata,
    sa.Column("upstream", sa.String(200), primary_key=True),
    sa.Column("downstream", sa.String(200), primary_key=True),
    # kind of the upstream node (model, feature or dataset); the downstream node's own kind
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("downstream_kind", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_dependencies_downstream", "downstream"),
)

staleness = sa.Table(
    "staleness",
    metadata,
    sa.Column("id", _ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(200), nullable=True),
    sa.Column("schema_version", sa.Integer, nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("uncertainty", sa.Float, nullable=True),
    sa.Column("basis", sa.JSON, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("event_time", sa.BigInteger, nullable=False),
    sa.Column("emitted_at", sa.BigInteger, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("impacted", sa.JSON, nullable=False),
    sa.Column("recorded_at", sa.BigInteger, nullable=False),
    # an event delivered twice (at-least-once) is the same verdict: recorded once
    sa.UniqueConstraint("model_id", "event_time", "emitted_at", name="uq_staleness_event"),
    sa.Index("ix_staleness_model_time", "model_id", "event_time"),
)

retrain_requests = sa.Table(
    "retrain_requests",
    metadata,
    sa.Column("request_id", sa.String(200), primary_key=True),
    sa.Column("model_id", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(200), nullable=False),
    sa.Column("episode", sa.BigInteger, nullable=False),  # epoch ms: int4 overflows
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index("ix_retrain_requests_model", "model_id"),
)

retrain_history = sa.Table(
    "retrain_history",
    metadata,
    sa.Column("request_id", sa.String(200), primary_key=True),
    sa.Column("status", sa.String(32), primary_key=True),
    sa.Column("at", sa.BigInteger, primary_key=True),
    sa.Column("detail", sa.Text, nullable=True),
)

# Records a consumer could not write because the database refused them (a non-transient error,
# `registry.dberrors`): kept whole here so the consumer can commit past them and go on.
parked_events = sa.Table(
    "parked_events",
    metadata,
    sa.Column("id", _ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("source_topic", sa.String(255), nullable=False),
    sa.Column("source_partition", sa.Integer, nullable=False),
    sa.Column("source_offset", sa.BigInteger, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),  # index in a batch record; -1: whole record
    sa.Column("model_id", sa.Text, nullable=True),
    sa.Column("value_b64", sa.Text, nullable=False),  # its bytes, as a dead letter has them
    sa.Column("error_class", sa.String(200), nullable=False),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("parked_at", sa.BigInteger, nullable=False),
    # a redelivered record parks once
    sa.UniqueConstraint(
        "source_topic", "source_partition", "source_offset", "position", name="uq_parked_event"
    ),
    sa.Index("ix_parked_events_model", "model_id"),
)
