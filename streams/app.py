"""The Faust app factory: builds the app from settings; nothing happens at import time."""

from __future__ import annotations

from typing import Any

import faust
from faust.types.auth import CredentialsT

from config.connections import kafka_security
from config.settings import CHANGELOG_BYTES, Settings
from streams.preflight import worker_class

CHANGELOG_BATCH_BYTES = CHANGELOG_BYTES
FAUST_REQUEST_TIMEOUT_S = 90.0  # Faust's default broker_request_timeout


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=broker_credentials(settings),
        Worker=worker_class(settings),  # refused credentials: one line and exit, before Faust
        store="rocksdb://",
        datadir=str(settings.datadir),
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.effective_replication_factor,
        producer_acks=-1,
        # Faust's default is 1200 s: a produce request the broker parks (unavailable, fenced,
        # leadership moving) was awaited for 20 minutes by the checkpoint and by the producer
        # flush of a revocation, a hung worker that SIGTERM could not stop (docs/faust.md).
        producer_request_timeout=settings.producer_request_timeout_s,
        stream_buffer_maxsize=settings.stream_buffer_maxsize,
        # Revocation must not wait for Faust's unacked events: the inputs never enter Faust's
        # streams (streams/runtime.py), and our revoke handler flushes what processors hold.
        stream_wait_empty=False,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        # Faust refuses a session timeout above its request timeout (90 s by default); static
        # membership wants minutes (docs/capacity.md), so the request timeout follows it.
        broker_request_timeout=max(FAUST_REQUEST_TIMEOUT_S, settings.session_timeout_s),
        # Static membership: no LeaveGroup on stop (aiokafka skips it when this is set), and a
        # member rejoining under the same id within the session timeout is handed its previous
        # assignment by the broker without a rebalance of the group.
        consumer_group_instance_id=settings.group_instance_id or None,
        # Faust's own default is 1; explicit so that a deployment chooses (docs/capacity.md).
        table_standby_replicas=settings.table_standby_replicas,
        producer_linger_ms=5,
        # A checkpoint's changelog for one partition must fit ONE record batch (atomic append).
        producer_max_batch_size=CHANGELOG_BATCH_BYTES,
        producer_max_request_size=CHANGELOG_BATCH_BYTES + 1_048_576,
        consumer_max_fetch_size=4 * 1_048_576,
        autodiscover=False,
    )
    return app


def rocksdb_options(settings: Settings) -> dict[str, Any]:
    """The RocksDB options of every state table, given to each table (`options=`): Faust's
    store reads them there, never from the app's `rocksdb_options` setting, which is how they
    went unapplied for a while (Faust's defaults: 64 MiB x 3 memtables, 2 GiB block cache,
    per partition DB and table)."""
    return {
        "block_cache_size": settings.rocksdb_block_cache_bytes,
        "write_buffer_size": settings.rocksdb_write_buffer_bytes,
        "max_write_buffer_number": 2,
        # Most reads of the join miss (every new prediction's pair): 10 bits a key make a
        # bloom filter answer 99 % of them without touching a block (Faust's default is 3).
        "bloom_filter_size": 10,
    }


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's form of `config.connections.kafka_security`: the same protocol, mechanism, user
    and TLS context as every other client (Faust turns it back into aiokafka's arguments)."""
    security: dict[str, Any] = kafka_security(settings)
    protocol = security["security_protocol"]
    if protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=security["sasl_plain_username"],
            password=security["sasl_plain_password"],
            mechanism=security["sasl_mechanism"],
            ssl_context=security.get("ssl_context"),  # SASL_SSL with it, SASL_PLAINTEXT without
        )
    if protocol == "SSL":
        return faust.SSLCredentials(security["ssl_context"])
    return None
