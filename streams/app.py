"""The Faust app factory: builds the app from settings; nothing happens at import time."""

from __future__ import annotations

import faust

from config.settings import Settings


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="rocksdb://",
        datadir=str(settings.datadir),
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.effective_replication_factor,
        topic_allow_declare=False,
        producer_acks=-1,
        producer_linger_ms=5,
        producer_max_batch_size=1_048_576,
        rocksdb_options={"block_cache_size": settings.rocksdb_block_cache_bytes},
        autodiscover=False,
    )
    return app
