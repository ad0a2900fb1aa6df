"""Runway's one settings object: the only code that reads the environment.

Every field is a `RUNWAY_<NAME>` environment variable (case-insensitive). Defaults are the seed's
numbers (`shared/seed/scalability-reliability.md`) and the local stack's loopback addresses, so
`runway worker` with no environment works against `runway stack up`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.windows import HOUR_MS, Window, parse_windows  # pure: imports nothing of the project

DAY_MS = 24 * 3600 * 1000
CHANGELOG_BYTES = 32 * 1024 * 1024  # one changelog record batch: a partition's checkpoint
OUTPUT_HEADROOM_BYTES = 32 * 1024  # an output record beyond the largest input it carries
AGENTS = ("join", "speed_view", "batch_view", "staleness")
NEED_JOIN = ("speed_view", "staleness")  # they read the join's state table in the same worker


class Settings(BaseSettings):
    # hide_input_in_errors: an error would otherwise print every setting, secrets included;
    # the messages below name the offending values themselves.
    model_config = SettingsConfigDict(
        env_prefix="RUNWAY_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    # -- deployment profile -------------------------------------------------------------------
    profile: Literal["dev", "production"] = Field(
        "dev",
        description="dev: one broker, replication 1. production: replication 3, min.insync 2.",
    )

    # -- Kafka ----------------------------------------------------------------------------------
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    # Transport security of every Kafka client (config/connections.py builds their options).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How every Kafka client connects: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or "
        "SASL_SSL (SASL over TLS).",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism with a SASL_* protocol."
    )
    kafka_sasl_username: str | None = Field(
        None, description="SASL user (required with a SASL_* protocol)."
    )
    kafka_sasl_password: SecretStr | None = Field(
        None, description="SASL password (required with a SASL_* protocol; never logged)."
    )
    kafka_ssl_cafile: Path | None = Field(
        None,
        description="CA certificates (PEM) that sign the brokers' certificates, with SSL or "
        "SASL_SSL; unset = the system's CAs. Hostnames are always verified.",
    )
    app_id: str = Field(
        "ground_truth_join", description="Faust app id = the join's consumer group."
    )
    topic_prefix: str = Field(
        "", description="Prefix for every topic name (tests isolate with it)."
    )
    topic_predictions: str = Field("predictions", description="Input: model predictions.")
    topic_outcomes: str = Field("outcomes", description="Input: ground-truth outcomes.")
    topic_joined: str = Field("joined", description="Output: joined pairs (batch view reads it).")
    topic_staleness: str = Field("staleness", description="Output: staleness events.")
    topic_dead_letters: str = Field("dead-letters", description="Bad input, with a reason.")
    topic_retrain_dlq: str = Field("retrain-dlq", description="Retrain requests waiting.")
    partitions: int = Field(16, description="Partitions of every Runway topic (seed: 16).")
    replication_factor: int | None = Field(
        None, description="Topic replication; unset = the profile's (dev 1, production 3)."
    )
    min_insync_replicas: int | None = Field(
        None, description="min.insync.replicas; unset = the profile's (dev 1, production 2)."
    )
    retention_ms: int = Field(
        7 * DAY_MS, description="Retention of the data topics (seed: 7 days)."
    )

    # -- services -------------------------------------------------------------------------------
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis for the speed view; rediss://... for TLS.",
    )
    redis_username: str | None = Field(
        None, description="Redis ACL user; unset = the URL's, else `default`."
    )
    redis_password: SecretStr | None = Field(
        None, description="Redis password (never logged); keep it out of RUNWAY_REDIS_URL."
    )
    redis_ssl_cafile: Path | None = Field(
        None,
        description="CA certificates (PEM) of a rediss:// server; unset = the system's CAs. "
        "Hostnames are always verified.",
    )
    s3_endpoint_url: str | None = Field(
        "http://127.0.0.1:9000", description="S3 endpoint override (moto/MinIO); empty = AWS."
    )
    s3_bucket: str = Field("runway", description="Bucket the local stack creates.")
    s3_region: str = Field("us-east-1", description="S3 region.")
    aws_access_key_id: str | None = Field(
        None,
        description="S3 access key; unset = the AWS default credential chain (environment, "
        "profile, container or instance role).",
    )
    aws_secret_access_key: SecretStr | None = Field(
        None, description="S3 secret key, set together with the access key (never logged)."
    )
    batch_view_uri: str = Field(
        "var/batch-view", description="Local directory or s3://bucket/prefix for the Parquet view."
    )

    # -- worker ---------------------------------------------------------------------------------
    datadir: Path = Field(Path("var/worker"), description="Faust data directory (RocksDB tables).")
    web_host: str = Field("127.0.0.1", description="Worker web server address.")
    web_port: int = Field(6066, description="Worker web server: /health and /metrics.")
    session_timeout_s: float = Field(
        30.0,
        description="Consumer group session timeout: how soon a dead worker's partitions move.",
    )
    heartbeat_interval_s: float = Field(3.0, description="Consumer group heartbeat interval.")
    group_instance_id: str = Field(
        "",
        description="Kafka static membership (`group.instance.id`) of this worker in the join's "
        "group, unique per worker (the pod's name): a worker restarted within "
        "RUNWAY_SESSION_TIMEOUT_S gets its partitions back with no rebalance and restores only "
        "its changelog tail; set the session timeout above a restart (docs/capacity.md). "
        "Empty = dynamic membership.",
    )
    table_standby_replicas: int = Field(
        1,
        ge=0,
        description="Faust standby replicas of each state partition on other workers (Faust's "
        "default, 1): a dead worker's partitions move to a worker that already holds them "
        "instead of restoring the whole changelog (docs/capacity.md).",
    )
    standby_bulk_apply: bool = Field(
        True,
        description="A standby replica writes each fetch of its changelog to RocksDB in one "
        "batch (tables/standby.py) instead of Faust's per-record recovery path, several times "
        "cheaper per record (docs/capacity.md, 'Standby replicas'); false = Faust's own path.",
    )
    restore_bulk_apply: bool = Field(
        True,
        description="A worker restoring an active partition from its changelog writes each "
        "fetch to RocksDB in one batch, as a standby does (RUNWAY_STANDBY_BULK_APPLY), instead "
        "of Faust's per-record recovery path; false = Faust's own path.",
    )
    state_snapshot_interval_s: float = Field(
        0.0,
        ge=0,
        description="Seconds between a worker's incremental snapshots of the state partitions it "
        "owns to S3 (RUNWAY_S3_BUCKET, under RUNWAY_STATE_SNAPSHOT_PREFIX): only new SST files "
        "are uploaded, the manifest last. 0 = none (they need S3; docs/capacity.md).",
    )
    state_snapshot_restore: bool = Field(
        False,
        description="A worker assigned a partition whose DB directory does not exist restores "
        "it from its newest snapshot before Faust opens it, then replays only the changelog "
        "written after it (bound by bytes, not by records; docs/capacity.md).",
    )
    state_snapshot_prefix: str = Field(
        "state-snapshots",
        description="Key prefix of state snapshots in RUNWAY_S3_BUCKET "
        "({prefix}/{app_id}/{table}/{partition}/).",
    )
    state_snapshot_keep: int = Field(
        3, ge=1, description="Newest snapshots kept per partition; older ones are deleted."
    )
    state_snapshot_max_age_s: float = Field(
        43_200.0,
        gt=0,
        description="A restore ignores snapshots older than this: keep it under the changelog "
        "topics' delete.retention.ms (24 h by default), after which compaction drops tombstones "
        "an older snapshot would need (its deleted keys would come back).",
    )
    rocksdb_write_buffer_bytes: int = Field(
        8 * 1024 * 1024,
        description="Memtable size per partition RocksDB (Faust's default 64 MiB x 3 per DB).",
    )
    stream_buffer_maxsize: int = Field(
        4096,
        description="Records queued per input partition for a processor before that partition is "
        "left out of the next fetches (at least 1,000).",
    )
    stream_buffer_max_bytes: int = Field(
        4 * 1_048_576,
        ge=1,
        description="...or this many bytes of record values (what bounds the worker's memory: "
        "a record of many events weighs as much as many records of one).",
    )
    rocksdb_block_cache_bytes: int = Field(
        8 * 1024 * 1024, description="Block cache per partition RocksDB (Faust's default: 2 GiB)."
    )
    agents: str = Field(
        "join,speed_view,batch_view,staleness",
        description="Comma list of agents this worker runs: join, speed_view, batch_view, "
        "staleness; speed_view and staleness need join in the same list.",
    )
    health_stall_s: float = Field(
        60.0,
        gt=0,
        description="/health answers 503 when owned partitions have records waiting and nothing "
        "progressed this long.",
    )
    health_max_checkpoint_age_s: float = Field(
        120.0,
        gt=0,
        description="/health answers 503 when records are held unacknowledged and the last "
        "checkpoint is older than this.",
    )

    # -- the join -------------------------------------------------------------------------------
    label_ttl_ms: int = Field(7 * DAY_MS, description="How long a prediction waits for its label.")
    label_ttl_overrides_ms: dict[str, int] = Field(
        default_factory=dict, description='Per-model TTL, JSON: {"model-a": 86400000}.'
    )
    early_outcome_ttl_ms: int = Field(
        7 * DAY_MS, description="How long an outcome waits for its prediction."
    )
    done_retention_ms: int = Field(
        7 * DAY_MS, description="How long a joined or expired pair is kept to spot duplicates."
    )
    max_batch_events: int = Field(1000, description="Most events one Kafka record may carry.")
    max_message_bytes: int = Field(1_000_000, description="Largest record accepted (bytes).")
    max_future_skew_ms: int = Field(
        300_000,
        gt=0,
        description="An event stamped more than this ahead of the worker's wall clock is "
        "dead-lettered and moves no clock (one future-dated event would otherwise expire every "
        "waiting prediction of its partition).",
    )
    gc_gen0_threshold: int = Field(
        50_000,
        ge=0,
        description="Allocations between two collections of the garbage collector's youngest "
        "generation in a worker (CPython's default is 700: a fifth of the join's CPU went to "
        "collections; streams/collector.py). 0 = CPython's default.",
    )
    checkpoint_interval_ms: int = Field(
        500,
        description="Flush state, outputs and offsets at least this often (it bounds how "
        "stale the speed view is: docs/bench.md, issue 12's latency).",
    )
    checkpoint_max_events: int = Field(
        50_000, description="...or after this many input events, whichever comes first."
    )
    checkpoint_max_keys: int = Field(
        20_000, description="...or when one partition has this many changed keys."
    )
    checkpoint_max_bytes: int = Field(
        8 * 1_048_576,
        description="...or when one partition's input applied since the last checkpoint "
        "reaches this many bytes (its changes must fit one 32 MiB changelog record batch).",
    )
    checkpoint_retry_timeout_s: float = Field(
        600.0,
        gt=0,
        description="Retriable Kafka errors in a checkpoint are retried with backoff this long; "
        "then the worker stops with one clear error.",
    )
    producer_request_timeout_s: float = Field(
        30.0,
        gt=0,
        description="How long one produce request may wait for the broker before it fails (and "
        "the checkpoint retries it); Faust's default of 1200 s let a parked request hang a worker.",
    )
    wall_clock_expiry_after_ms: int | None = Field(
        None, description="Idle partition falls back to wall clock after this; unset = label TTL."
    )

    # -- speed view -----------------------------------------------------------------------------
    windows: str = Field(
        "1h,24h,7d",
        description="Sliding windows of the speed view; the longest (over 6h) also sets how long "
        "the join keeps 1-hour buckets and so the staleness reference lookback.",
    )
    speed_view_interval_ms: int = Field(
        500,
        description="At most one Redis write per model per this interval (a model's view is "
        "also written right after each checkpoint that changed it, within this bound).",
    )
    redis_key_prefix: str = Field("runway", description="Prefix of every Redis key.")

    # -- batch view -----------------------------------------------------------------------------
    batch_view_max_rows: int = Field(
        100_000, description="Flush Parquet when this many rows are buffered (all partitions)."
    )
    batch_view_max_age_s: float = Field(60.0, description="...or when its oldest row is this old.")

    # -- staleness (issue 4; staleness/ - thresholds of the scorer, README "Staleness") -------
    staleness_windows: str = Field(
        "1h,24h", description="Recent windows judged (each must be in RUNWAY_WINDOWS)."
    )
    staleness_reference_window_ms: int = Field(
        DAY_MS,
        description="Reference window: this long from a version's first prediction; with the "
        "settle time at most the longest of RUNWAY_WINDOWS.",
    )
    staleness_reference_settle_ms: int = Field(
        DAY_MS, description="The reference takes late labels this long after its end, then freezes."
    )
    staleness_min_labels: int = Field(
        200, description="Labels a window needs before performance is judged."
    )
    staleness_min_label_coverage: float = Field(
        0.1, description="...and label coverage; below it ground truth counts as delayed."
    )
    staleness_min_predictions: int = Field(
        500, description="Predictions each side needs before drift (PSI) is computed."
    )
    staleness_binary_metric: Literal["roc_auc", "accuracy"] = Field(
        "roc_auc", description="Primary metric of binary models (regression: rmse)."
    )
    staleness_noise_z: float = Field(
        2.0, description="A performance drop counts only beyond this many standard errors."
    )
    staleness_perf_warning: float = Field(
        0.05, description="Relative drop beyond noise that means WARNING."
    )
    staleness_perf_stale: float = Field(
        0.10, description="Relative drop beyond noise that means STALE."
    )
    staleness_psi_moderate: float = Field(0.1, description="PSI from here: moderate (WARNING).")
    staleness_psi_significant: float = Field(0.2, description="PSI from here: significant (STALE).")
    staleness_psi_bins: int = Field(
        10, description="PSI is taken over this many reference-quantile bins."
    )
    staleness_psi_epsilon: float = Field(1e-4, description="Share used for an empty bin in PSI.")
    staleness_psi_noise_z: float = Field(
        3.0,
        description="PSI counts only beyond its no-drift mean plus this many no-drift standard "
        "deviations, (B-1)c + z sqrt(2(B-1))c with c = 1/n_ref + 1/n_recent (issue 15).",
    )
    staleness_calibration_max_ece: float = Field(
        0.05,
        description="Binary scores estimate performance while labels are missing (CBPE) only if "
        "their expected calibration error over the reference is at most this (issue 15).",
    )
    staleness_max_age_ms: int = Field(
        30 * DAY_MS, description="Maximum model age unless the registry says otherwise."
    )
    staleness_age_warning_fraction: float = Field(
        0.8, description="WARNING from this fraction of the maximum age; STALE at 1."
    )
    staleness_warning_score: float = Field(0.4, description="Score from which a model is WARNING.")
    staleness_stale_score: float = Field(0.7, description="Score from which a model is STALE.")
    staleness_heartbeat_interval_ms: int = Field(
        60_000, description="Re-emit an unchanged verdict this often (wall clock)."
    )

    # -- local stack (`runway stack up`) ---------------------------------------------------------
    stack_dir: Path = Field(
        Path(".stack"), description="The local stack's one directory: data, logs, pid files."
    )
    stack_cache_dir: Path = Field(
        Path("~/.cache/runway"), description="Kafka's jars are cached here (outside git)."
    )
    stack_kafka_version: str = Field("4.1.1", description="Apache Kafka version (Maven Central).")
    stack_kafka_heap: str = Field("512m", description="-Xmx of each local Kafka JVM.")
    stack_kafka_port: int = Field(9092, description="Single dev broker's port.")
    stack_kafka_controller_port: int = Field(9093, description="Single dev broker's controller.")
    stack_cluster_port: int = Field(
        9192,
        description="Three-broker cluster: brokers on this port and the next two, "
        "their controllers on the three after, SASL_SSL listeners on the three after those.",
    )
    stack_redis_port: int = Field(6379, description="Local Redis port.")
    stack_s3_port: int = Field(9000, description="Local S3 (moto server) port.")
    stack_postgres: bool = Field(True, description="Start PostgreSQL with the local stack.")
    stack_postgres_port: int = Field(5433, description="Local PostgreSQL port.")
    stack_up_timeout_s: float = Field(120.0, description="How long `stack up` waits per service.")
    postgres_url: str = Field(
        "postgresql://runway@127.0.0.1:5433/runway", description="PostgreSQL (registry, later)."
    )

    # -- registry and HTTP API (issue 4; registry/) ---------------------------------------------
    registry_dsn: str | None = Field(
        None,
        description="Registry database (SQLAlchemy URL or postgresql:// DSN); "
        "unset = SQLite file registry.sqlite3 under RUNWAY_DATADIR.",
    )
    registry_read_dsn: str | None = Field(
        None, description="Optional read replica for registry reads; unset = RUNWAY_REGISTRY_DSN."
    )
    registry_db_timeout_s: float = Field(
        3.0, description="Connect/statement timeout of registry queries: how soon 'DB down' shows."
    )
    registry_group_id: str = Field(
        "runway-registry", description="Consumer group of `runway registry-agent`."
    )
    registry_agent_metrics_port: int = Field(
        6071,
        description="`runway registry-agent`'s Prometheus /metrics port (0 = none; a port in "
        "use is logged and the agent runs without it).",
    )
    registry_backup_interval_s: float = Field(
        60.0,
        ge=0,
        description="A SQLite registry is snapshotted (online backup API) this often by "
        "`runway registry-agent`: the registry's RPO (seed: < 5 min); 0 = no scheduled backups.",
    )
    registry_backup_uri: str | None = Field(
        None,
        description="Where registry snapshots go: a directory or s3://bucket/prefix (with "
        "RUNWAY_S3_ENDPOINT_URL); unset = registry-backup/ beside the SQLite file (set it off "
        "the registry's own disk for real recovery).",
    )
    registry_backup_keep: int = Field(
        60, ge=1, description="Newest registry snapshots kept; older ones are deleted."
    )
    registry_standby_port: int = Field(
        5434,
        description="Port of the local PostgreSQL streaming standby (`runway registry-standby`).",
    )
    api_host: str = Field("127.0.0.1", description="`runway api` listen address.")
    api_port: int = Field(8080, description="`runway api` port.")
    dashboard_retrain_health_url: str | None = Field(
        None,
        description="The retrain agent's /health the dashboard shows (breaker, queue); unset = "
        "not shown.",
    )
    # repr=False: tokens stay out of any printed or logged Settings
    api_token: str | None = Field(
        None,
        repr=False,
        description="Write token (Authorization: Bearer) of `runway api`; unset in the dev "
        "profile = a random one, printed once at start; required in other profiles.",
    )
    api_tokens: dict[str, Literal["read", "write"]] = Field(
        default_factory=dict,
        repr=False,
        description='More API tokens, JSON: {"<token>": "read" or "write"}; reads need a '
        "token only when a read token is set.",
    )
    registry_api_url: str | None = Field(
        None,
        description="Where `runway models` and `runway model` read: a `runway api` base URL "
        "(e.g. http://127.0.0.1:8080; token: RUNWAY_API_TOKEN); unset = the registry database.",
    )
    bulkhead_dashboard_max_concurrent: int = Field(
        50, description="Dashboard-class API requests in flight (seed: 50)."
    )
    bulkhead_dashboard_max_wait_s: float = Field(
        5.0, description="Longest wait for a dashboard slot before 503 (seed: 5 s)."
    )
    bulkhead_api_max_concurrent: int = Field(
        100, description="API-class requests in flight (seed: 100)."
    )
    bulkhead_api_max_wait_s: float = Field(
        10.0, description="Longest wait for an API slot before 503 (seed: 10 s)."
    )
    bulkhead_internal_max_concurrent: int = Field(
        30, description="Internal-class requests in flight (seed: 30)."
    )
    bulkhead_internal_max_wait_s: float = Field(
        3.0, description="Longest wait for an internal slot before 503 (seed: 3 s)."
    )

    # -- autoscale (`runway lag`, `runway autoscale`, deploy/keda) --------------------------------
    autoscale_min_workers: int = Field(4, description="Fewest workers (seed: 4).")
    autoscale_max_workers: int = Field(
        32, description="Most workers (seed: 32); capped at the input topics' partition count."
    )
    autoscale_scale_up_lag_s: float = Field(
        300.0, description="Scale up when the group's lag exceeds this many seconds (seed: 300)."
    )
    autoscale_scale_down_lag_s: float = Field(
        30.0, description="Scale down when the lag stays under this many seconds (seed: 30)."
    )
    autoscale_stabilization_s: float = Field(
        300.0, description="...for this long before each step down (as Kubernetes' HPA)."
    )
    autoscale_cooldown_s: float = Field(
        120.0, description="No further change for this long after any change."
    )
    autoscale_interval_s: float = Field(5.0, description="How often the autoscaler samples lag.")
    autoscale_rate_window_s: float = Field(
        30.0, description="Consumption rate = committed offsets' growth over this window."
    )
    autoscale_metrics_port: int = Field(
        6060, description="The autoscaler's Prometheus /metrics port (0 = none)."
    )
    autoscale_dir: Path = Field(
        Path("var/autoscale"), description="Data directories and logs of autoscaled workers."
    )

    # -- `runway validate-failover` (registry/validate.py) --------------------------------------
    failover_max_lag_s: float = Field(
        60.0, description="validate-failover: the join group's lag above this is degraded."
    )
    failover_max_view_age_s: float = Field(
        300.0,
        description="validate-failover: a model's speed view whose clock (latest event time) is "
        "older than this is stale (degraded).",
    )

    # -- retrain agent and stand-in orchestrator (issue 5; retrain/) -------------------------------
    retrain_orchestrator_url: str = Field(
        "http://127.0.0.1:8090", description="Orchestrator (Maestro API) base URL."
    )
    retrain_workflow_id: str = Field(
        "runway-retrain", description="Maestro workflow started to retrain a model."
    )
    retrain_workflows: dict[str, str] = Field(
        default_factory=dict, description='Per-model workflow, JSON: {"model-a": "wf-a"}.'
    )
    retrain_group_id: str | None = Field(
        None, description="Consumer group of `runway retrain-agent`; unset = <app id>-retrain."
    )
    retrain_web_port: int = Field(6070, description="Retrain agent's /health and /metrics port.")
    retrain_cooldown_ms: int = Field(
        DAY_MS, description="No new request for a model within this (event time) of its last."
    )
    retrain_max_concurrent: int = Field(
        20, description="Requests in flight at once (seed trigger: 20); the rest queue."
    )
    retrain_dependents: bool = Field(
        False, description="Also retrain a stale model's downstream dependents (`impacted`)."
    )
    retrain_failure_threshold: int = Field(
        5, description="Breaker opens after this many consecutive failed attempts (seed: 5)."
    )
    retrain_success_threshold: int = Field(
        3, description="Breaker closes after this many successful half-open trials (seed: 3)."
    )
    retrain_reset_timeout_s: float = Field(
        60.0, description="Breaker goes half-open this long after opening (seed: 60 s)."
    )
    retrain_half_open_requests: int = Field(
        1, description="Trial calls admitted at a time while half-open (seed: 1)."
    )
    retrain_call_timeout_s: float = Field(
        30.0, description="Timeout of one orchestrator call (seed: 30 s)."
    )
    retrain_max_attempts: int = Field(5, description="Attempts per request, retries included.")
    retrain_backoff_base_s: float = Field(
        1.0, description="Full-jitter backoff: wait in [0, min(max, base * 2^(n-1))]."
    )
    retrain_backoff_max_s: float = Field(
        60.0, description="Cap of the backoff wait, and of a Retry-After the orchestrator sends."
    )
    retrain_poll_s: float = Field(
        0.5, description="How often the DLQ replayer looks again while it may not call."
    )
    retrain_max_replays: int = Field(
        60,
        ge=1,
        description="A dead-lettered request that fails this many replays is parked (recorded "
        "with its last error) so the DLQ moves on; at the 60 s reset timeout, about an hour.",
    )
    retrain_commit_interval_s: float = Field(
        1.0, description="How often the retrain agent commits settled offsets."
    )
    standin_host: str = Field("127.0.0.1", description="`runway orchestrator-standin` address.")
    standin_port: int = Field(8090, description="`runway orchestrator-standin` port.")

    # -- test-only ------------------------------------------------------------------------------
    max_events_per_s: float | None = Field(
        None, description="Test-only cap on one worker's input rate (autoscaler tests)."
    )

    # -- the settings as a whole ----------------------------------------------------------------
    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        """Every wrong combination at once, as one error naming the settings involved."""
        problems = _agent_problems(self.agents) + _credential_problems(self)
        if not self.max_message_bytes <= self.checkpoint_max_bytes <= CHANGELOG_BYTES // 2:
            problems.append(
                f"RUNWAY_CHECKPOINT_MAX_BYTES={self.checkpoint_max_bytes} must be at least "
                f"RUNWAY_MAX_MESSAGE_BYTES ({self.max_message_bytes}), so that one record fits a "
                f"checkpoint, and at most {CHANGELOG_BYTES // 2}, half a changelog record batch "
                "(state changes weigh more than the input that made them)."
            )
        try:
            windows = parse_windows(self.windows)
        except ValueError as exc:
            problems.append(f"RUNWAY_WINDOWS={self.windows!r}: {exc}.")
            windows = []
        try:
            judged = parse_windows(self.staleness_windows)
        except ValueError as exc:
            problems.append(f"RUNWAY_STALENESS_WINDOWS={self.staleness_windows!r}: {exc}.")
            judged = []
        if windows:
            problems += _staleness_window_problems(self, windows, judged)
        if problems:
            raise ValueError("invalid settings:\n- " + "\n- ".join(problems))
        return self

    @property
    def staleness_reference_lookback_ms(self) -> int:
        """How far back the scorer looks for a version's first prediction (the reference's start).

        Derived, not set: the longest window of `RUNWAY_WINDOWS`, which is how long the join keeps
        its 1-hour buckets (`config.windows.bucket_retention`); older buckets are gone anyway.
        """
        return _longest(parse_windows(self.windows)).length_ms

    @property
    def output_record_bytes(self) -> int:
        """The byte budget of one output record (`joined`, dead letters): a joined event of
        the largest accepted input record fits alone (its label fields are small)."""
        return self.max_message_bytes + OUTPUT_HEADROOM_BYTES

    @property
    def topic_max_message_bytes(self) -> int:
        """`max.message.bytes` of Runway's topics, a limit on record *batches*: the worker's
        one producer batches up to a changelog batch (32 MiB) per partition, outputs included,
        and aiokafka does not split a batch the broker refuses (MessageSizeTooLarge)."""
        return max(self.output_record_bytes, CHANGELOG_BYTES) + 1_048_576

    @property
    def effective_replication_factor(self) -> int:
        if self.replication_factor is not None:
            return self.replication_factor
        return 3 if self.profile == "production" else 1

    @property
    def effective_min_insync_replicas(self) -> int:
        if self.min_insync_replicas is not None:
            return self.min_insync_replicas
        return 2 if self.profile == "production" else 1

    def topic(self, name: str) -> str:
        """The full topic name for a logical topic name (`predictions`, ...)."""
        return self.topic_prefix + getattr(self, f"topic_{name.replace('-', '_')}")

    @property
    def topic_names(self) -> dict[str, str]:
        logical = ["predictions", "outcomes", "joined", "staleness", "dead_letters", "retrain_dlq"]
        return {name: self.topic(name) for name in logical}

    def label_ttl_for(self, model_id: str) -> int:
        return self.label_ttl_overrides_ms.get(model_id, self.label_ttl_ms)


def _longest(windows: list[Window]) -> Window:
    return max(windows, key=lambda w: w.length_ms)


def _agent_problems(spec: str) -> list[str]:
    names = [name.strip() for name in spec.split(",") if name.strip()]  # as streams.worker reads it
    known = ", ".join(AGENTS)
    if not names:
        return [f"RUNWAY_AGENTS={spec!r} names no agent; allowed: {known}."]
    problems = []
    unknown = [name for name in names if name not in AGENTS]
    if unknown:
        problems.append(
            f"RUNWAY_AGENTS={spec!r}: unknown agent(s) {', '.join(unknown)}; allowed: {known}."
        )
    orphans = [name for name in NEED_JOIN if name in names and "join" not in names]
    if orphans:
        problems.append(
            f"RUNWAY_AGENTS={spec!r}: {' and '.join(orphans)} "
            f"{'reads' if len(orphans) == 1 else 'read'} the join's state in the same worker, "
            f"so join must be in the same list (e.g. join,{','.join(orphans)})."
        )
    return problems


def _credential_problems(settings: Settings) -> list[str]:
    """Credentials that would be ignored or half set: caught at start, not at the first connect.

    The messages name settings, never a secret's value.
    """
    problems = []
    protocol = settings.kafka_security_protocol
    sasl_set = [
        f"RUNWAY_KAFKA_SASL_{name.upper()}"
        for name in ("username", "password")
        if getattr(settings, f"kafka_sasl_{name}") is not None
    ]
    if protocol.startswith("SASL_") and len(sasl_set) < 2:
        problems.append(
            f"RUNWAY_KAFKA_SECURITY_PROTOCOL={protocol} needs RUNWAY_KAFKA_SASL_USERNAME and "
            "RUNWAY_KAFKA_SASL_PASSWORD."
        )
    if not protocol.startswith("SASL_") and sasl_set:
        problems.append(
            f"{' and '.join(sasl_set)} set, but RUNWAY_KAFKA_SECURITY_PROTOCOL={protocol} sends "
            "no SASL credentials: use SASL_SSL (or SASL_PLAINTEXT)."
        )
    problems += _cafile_problems(
        "RUNWAY_KAFKA_SSL_CAFILE",
        settings.kafka_ssl_cafile,
        protocol.endswith("SSL"),
        f"RUNWAY_KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS",
    )
    url = urlparse(settings.redis_url)
    problems += _cafile_problems(
        "RUNWAY_REDIS_SSL_CAFILE",
        settings.redis_ssl_cafile,
        url.scheme == "rediss",
        "RUNWAY_REDIS_URL is not a rediss:// (TLS) URL",
    )
    if settings.redis_password is not None and url.password:
        problems.append(
            "RUNWAY_REDIS_PASSWORD is set and RUNWAY_REDIS_URL carries a password too: keep the "
            "password only in RUNWAY_REDIS_PASSWORD (the URL's would win)."
        )
    if settings.redis_username is not None and url.username:
        problems.append(
            "RUNWAY_REDIS_USERNAME is set and RUNWAY_REDIS_URL names a user too: keep one."
        )
    keys = (settings.aws_access_key_id is None, settings.aws_secret_access_key is None)
    if keys[0] != keys[1]:
        problems.append(
            "RUNWAY_AWS_ACCESS_KEY_ID and RUNWAY_AWS_SECRET_ACCESS_KEY go together: set both, "
            "or neither for the AWS default credential chain."
        )
    return problems


def _cafile_problems(name: str, path: Path | None, tls: bool, why_not: str) -> list[str]:
    if path is None:
        return []
    if not tls:
        return [f"{name} is set, but {why_not}."]
    if not path.expanduser().is_file():
        return [f"{name}={path}: no such file."]
    return []


def _staleness_window_problems(
    settings: Settings, windows: list[Window], judged: list[Window]
) -> list[str]:
    """The staleness windows and the reference read the join's buckets: they must be kept."""
    problems = []
    lengths = {w.length_ms for w in windows}
    missing = [w.name for w in judged if w.length_ms not in lengths]
    if missing:
        problems.append(
            f"RUNWAY_STALENESS_WINDOWS={settings.staleness_windows!r}: {', '.join(missing)} not "
            f"among RUNWAY_WINDOWS={settings.windows!r}; each staleness window must be one of "
            "those (the scorer reads the buckets the join keeps for them)."
        )
    longest = _longest(windows)
    if longest.gran != "h":
        problems.append(
            f"RUNWAY_WINDOWS={settings.windows!r}: the longest window ({longest.name}) must be "
            "longer than 6h: the staleness reference is read from 1-hour buckets, which the join "
            "keeps only for such windows."
        )
        return problems
    hours = -(-settings.staleness_reference_window_ms // HOUR_MS)  # the reference is whole hours
    needed = hours * HOUR_MS + settings.staleness_reference_settle_ms
    if needed > longest.length_ms:
        problems.append(
            f"RUNWAY_STALENESS_REFERENCE_WINDOW_MS={settings.staleness_reference_window_ms} "
            f"(rounded up to {hours}h) + RUNWAY_STALENESS_REFERENCE_SETTLE_MS="
            f"{settings.staleness_reference_settle_ms} = {needed} ms exceeds the longest of "
            f"RUNWAY_WINDOWS={settings.windows!r} ({longest.name} = {longest.length_ms} ms): "
            "the reference is re-read from the join's 1-hour buckets until it freezes, and the "
            "join keeps them only that long. Shorten the reference or the settle time, or add "
            "a longer window."
        )
    return problems


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; callers pass the object on (nothing reads it at import)."""
    return Settings(**overrides)  # type: ignore[arg-type]


def worker_environment(settings: Settings) -> dict[str, str]:
    """The environment that makes a `runway worker` subprocess load exactly `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWAY_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):  # the child needs the secret itself, not its mask
            value = value.get_secret_value()
        if isinstance(value, dict):
            value = json.dumps(value)
        env[f"RUNWAY_{name.upper()}"] = str(value)
    return env
