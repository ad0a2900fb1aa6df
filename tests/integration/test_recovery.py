"""State loss: a worker whose data directory is gone rebuilds its state from the changelog.

The worker joins the first phase of the crafted data set and stops cleanly; then its data
directory AND the speed view in Redis are deleted, so nothing but the changelog topics holds
what it joined. Its replacement restores (Faust's recovery from the changelog), rewrites every
model's view from the restored state, and joins the second phase (late outcomes, judged
against the restored pairs). The views must equal the oracle computed from what was sent, and
the batch view must hold each pair once: a pair restored as "joined" is not joined again.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from config.connections import redis_options
from config.settings import Settings
from stack.processes import START_MARK
from tests.integration import dataset
from tests.integration.harness import Worker, group_caught_up, send_records, wait_for
from tests.integration.test_join import check_everything, own_redis_prefix, worker_settings
from tools.traffic import Record

pytestmark = pytest.mark.integration

RESTORE_STARTED = "Restoring state from changelog topics"
RESTORE_DONE = "Done reading from changelog topics"


async def delete_speed_view(settings: Settings) -> int:
    redis = Redis.from_url(settings.redis_url, **redis_options(settings))
    try:
        names = [key async for key in redis.scan_iter(match=f"{settings.redis_key_prefix}:*")]
        return int(await redis.delete(*names)) if names else 0
    finally:
        await redis.aclose()


def last_start(log: Path) -> list[str]:
    """The lines the latest start of a worker wrote to its (appended) log."""
    lines = log.read_text(errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(START_MARK)]
    return lines[starts[-1] + 1 :]


async def drained_then_stopped(
    settings: Settings, config: Settings, log: Path, records: list[Record], what: str
) -> None:
    """`records` sent and processed by one worker of `config`, which then stops cleanly."""
    topics = [settings.topic("predictions"), settings.topic("outcomes"), settings.topic("joined")]
    await send_records(settings, records)
    worker = Worker(config, log).start()
    try:
        await wait_for(worker.healthy, 90, "the worker's /health")
        await wait_for(lambda: group_caught_up(settings, topics), 240, what)
    except BaseException:
        print(worker.log_tail(80))
        worker.stop()
        raise
    assert worker.stop() == "exit 0"


async def test_a_worker_without_its_disk_rebuilds_from_the_changelog(
    settings: Settings, tmp_path: Path
) -> None:
    settings = own_redis_prefix(settings)
    data = dataset.build(events=10_000, seed=23)
    topics = [settings.topic("predictions"), settings.topic("outcomes"), settings.topic("joined")]
    config = worker_settings(settings, tmp_path, "lost")
    log = tmp_path / "worker.log"
    await drained_then_stopped(settings, config, log, data.phase1, "phase 1 processed")
    assert config.datadir.is_dir() and any(config.datadir.rglob("*.db"))
    shutil.rmtree(config.datadir)
    assert await delete_speed_view(settings) > 0

    began = time.monotonic()
    worker = Worker(config, log).start()
    try:
        await wait_for(worker.healthy, 90, "the replacement's /health")
        await send_records(settings, data.phase2)
        await wait_for(lambda: group_caught_up(settings, topics), 120, "phase 2 processed")
        await check_everything(settings, data, tmp_path)
        print(f"restored and exact {time.monotonic() - began:.1f} s after the restart")
    except BaseException:
        print(worker.log_tail(80))
        raise
    finally:
        worker.stop()
    restarted = last_start(log)
    assert any(RESTORE_STARTED in line for line in restarted), "no restore from the changelog"
    assert any(RESTORE_DONE in line for line in restarted)
