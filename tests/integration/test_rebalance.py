"""Partitions handed between workers while a backlog flows: each pair lands in Parquet once.

The group grows from one worker to three and shrinks back to one (graceful stops, no kills)
while the input is consumed under a rate cap, so every rebalance finds records in flight, files
half-buffered and checkpoints pending. Expected figures come from `oracle.py`.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from config.settings import Settings
from stack.topics import ensure_topics
from tests.integration import dataset
from tests.integration.harness import Worker, safety_nets_used, send_records, wait_for
from tests.integration.test_join import (
    check_everything,
    own_redis_prefix,
    run_until_done,
    worker_settings,
)

pytestmark = pytest.mark.integration


async def test_group_grows_and_shrinks_under_a_backlog(settings: Settings, tmp_path: Path) -> None:
    # Eight partitions, so that each of three workers owns some.
    settings = own_redis_prefix(
        settings.model_copy(
            update={
                "partitions": 8,
                "topic_prefix": settings.topic_prefix.replace("test-", "rebalance-"),
                "app_id": settings.app_id + "-rebalance",
            }
        )
    )
    await ensure_topics(settings)
    data = dataset.build(events=60_000, seed=23)
    await send_records(settings, data.phase1)
    capped = {"max_events_per_s": 3_000.0}
    first = Worker(worker_settings(settings, tmp_path, "w0", **capped), tmp_path / "w0.log").start()
    others: list[Worker] = []
    try:
        await wait_for(first.healthy, 90, "the first worker")
        for name in ("w1", "w2"):  # one to three, a rebalance each
            worker = Worker(
                worker_settings(settings, tmp_path, name, **capped), tmp_path / f"{name}.log"
            ).start()
            others.append(worker)
            await wait_for(lambda w=worker: owns_partitions(w), 90, f"worker {name} to own some")
        for worker in reversed(others):  # and back to one, gracefully
            await wait_for(lambda w=worker: owns_partitions(w), 90, "the worker to own some")
            worker.stop()
            assert worker.process is not None and worker.process.returncode == 0
        await run_until_done(settings, data)
        await check_everything(settings, data, tmp_path)
    except BaseException:
        print(first.log_tail(80))
        raise
    finally:
        first.stop()
        for worker in others:
            worker.stop()
    holes, seeks = safety_nets_used(tmp_path.glob("*.log"))
    assert (holes, seeks) == ([], [])


def owns_partitions(worker: Worker) -> bool:
    """The worker has joined the group and owns join partitions (so stopping it hands them on)."""
    url = f"http://{worker.settings.web_host}:{worker.settings.web_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(json.loads(response.read())["join_partitions"])
    except OSError:
        return False
