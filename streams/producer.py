"""The product's Kafka producer: durable and ordered (acks=all, idempotent), batched for speed.

One configuration for everything that writes input or output records outside a Faust agent:
the registry agent's dead letters, `runway retrain-request`, the traffic generator and the
benchmarks (which must measure the producer the product uses).
"""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from config.connections import kafka_options
from config.settings import Settings


def make_producer(settings: Settings) -> AIOKafkaProducer:
    """Durable, ordered, fast: acks=all with idempotence, 1 MiB batches, a short linger."""
    return AIOKafkaProducer(
        **kafka_options(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=1_048_576,
        max_request_size=max(1_048_576, settings.topic_max_message_bytes),
        compression_type=None,
    )
