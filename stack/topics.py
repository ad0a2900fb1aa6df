"""Runway's six topics: created with the configured partitions, replication and retention."""

from __future__ import annotations

import contextlib
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from config.connections import describe_kafka, kafka_options
from config.settings import Settings
from stack.clock import Deadline, wait_until
from stack.errors import StackError, TopicMismatch

TOPIC_ALREADY_EXISTS = 36
UNKNOWN_TOPIC = 3


def topic_configs(settings: Settings) -> dict[str, str]:
    return {
        "retention.ms": str(settings.retention_ms),
        "min.insync.replicas": str(settings.effective_min_insync_replicas),
        # Records are split by bytes below this (outputs) or refused above it (inputs): a
        # broker default of ~1 MiB would refuse a joined record of the largest valid input.
        "max.message.bytes": str(settings.topic_max_message_bytes),
    }


async def _partitions(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partition counts of those of `names` that exist."""
    found: dict[str, int] = {}
    for topic in await admin.describe_topics(names):
        if topic["error_code"] == 0:
            found[topic["topic"]] = len(topic["partitions"])
    return found


async def _all_led(admin: AIOKafkaAdminClient, names: list[str]) -> bool:
    topics = await admin.describe_topics(names)
    return len(topics) == len(names) and all(
        t["error_code"] == 0
        and t["partitions"]
        and all(p["error_code"] == 0 and p["leader"] >= 0 for p in t["partitions"])
        for t in topics
    )


def _check_partitions(settings: Settings, existing: dict[str, int]) -> None:
    for name in settings.topic_names.values():
        actual = existing.get(name)
        if actual is not None and actual != settings.partitions:
            raise TopicMismatch(name, settings.partitions, actual)


async def ensure_topics(settings: Settings, timeout_s: float = 60.0) -> None:
    """Make sure Runway's topics exist with the configured partitions, all partitions led.
    Raises TopicMismatch when one exists with another partition count."""
    await create_topics(settings, timeout_s)


async def create_topics(settings: Settings, timeout_s: float = 60.0) -> list[str]:
    """Create Runway's topics that are missing; names created. Raises TopicMismatch when one
    exists with another partition count, StackError when Kafka cannot be reached or refuses."""
    names = list(settings.topic_names.values())
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    try:
        try:
            await admin.start()
        except Exception as exc:
            raise StackError(
                f"{describe_kafka(settings)} cannot be reached ({exc!r}): "
                "start it with `runway stack up`."
            ) from exc
        existing = await _partitions(admin, names)
        _check_partitions(settings, existing)
        missing = [name for name in names if name not in existing]
        created: list[str] = []
        if missing:
            response: Any = await admin.create_topics(
                [
                    NewTopic(
                        name,
                        num_partitions=settings.partitions,
                        replication_factor=settings.effective_replication_factor,
                        topic_configs=topic_configs(settings),
                    )
                    for name in missing
                ]
            )
            for error in response.topic_errors:
                name, code = error[0], error[1]
                message = error[2] if len(error) > 2 else None
                if code == 0:
                    created.append(name)
                elif code != TOPIC_ALREADY_EXISTS:
                    raise StackError(
                        f"Kafka refused to create topic {name!r}: "
                        f"{for_code(code).__name__} {message or ''}".strip()
                    )

        async def led() -> bool:
            return await _all_led(admin, names)

        if not await wait_until(led, Deadline(timeout_s), interval=0.2):
            raise StackError(f"Runway's topics have no leaders after {timeout_s:.0f}s.")
        _check_partitions(settings, await _partitions(admin, names))
        return created
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
