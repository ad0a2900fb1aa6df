"""The broker freezes for a minute while a worker drains a backlog: the worker must come back.

The broker is stopped with SIGSTOP (its connections stay open, nothing answers) while the
worker has produce requests in flight, and kept stopped until a request of the worker has timed
out. With Faust's default producer request timeout (1200 s) such a freeze could leave a worker
awaiting its producer for 20 minutes (seen in one of four freezes on a large backlog:
`tools/freeze_repro.sh`, docs/faust.md). With `RUNWAY_PRODUCER_REQUEST_TIMEOUT_S` the request
fails after seconds, the checkpoint retries it, and the join ends exact.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from stack import api
from tests.integration import dataset
from tests.integration.harness import Worker, send_records, wait_for
from tests.integration.test_join import check_everything, own_redis_prefix, run_until_done
from tests.integration.test_join import worker_settings as join_worker_settings

pytestmark = pytest.mark.integration


async def test_a_worker_comes_back_after_the_broker_froze(
    settings: Settings, tmp_path: Path, stack: Any
) -> None:
    settings = own_redis_prefix(settings)
    data = dataset.build(events=60_000, seed=31)
    await send_records(settings, data.phase1)
    worker = Worker(
        join_worker_settings(
            settings, tmp_path, "w", max_events_per_s=3_000.0, producer_request_timeout_s=10.0
        ),
        tmp_path / "w.log",
    ).start()
    broker = next(row.pid for row in await api.status(settings) if row.name == "kafka")
    assert broker is not None
    try:
        await wait_for(worker.healthy, 90, "the worker")
        await wait_for(lambda: "rows written" in worker.log_tail(400), 60, "work in progress")
        os.kill(broker, signal.SIGSTOP)
        try:  # frozen until the worker has met it: a produce request timed out
            await wait_for(
                lambda: "RequestTimedOutError" in worker.log_tail(400), 90, "a timed-out request"
            )
        finally:
            os.kill(broker, signal.SIGCONT)
        await run_until_done(settings, data)
        await check_everything(settings, data, tmp_path)
        assert worker.alive(), "the worker stopped instead of retrying"
    except BaseException:
        print(worker.log_tail(80))
        raise
    finally:
        worker.stop()
