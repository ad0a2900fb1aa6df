"""A snapshot download longer than the session timeout, inside the rebalance, keeps the member
in its group (streams/runtime.py, `Runtime.kept_in_group`).

About a minute: part of `make test`, as the one short case of a restore's own fault (the
longer snapshot cases run under `make test-faults`, test_snapshot_restore.py).
"""

from __future__ import annotations

import re
import shutil
import urllib.parse
from pathlib import Path

import pytest

from config.settings import Settings
from tests.integration import dataset
from tests.integration.harness import Worker, group_caught_up, send_records, wait_for
from tests.integration.slow_link import SlowLink
from tests.integration.test_join import check_everything, own_redis_prefix, worker_settings
from tests.integration.test_recovery import delete_speed_view, drained_then_stopped, last_start
from tests.integration.test_snapshot_restore import snapshot_stopped_worker
from tests.integration.test_static_membership import JOINED_GROUP

pytestmark = pytest.mark.integration


RESTORE_SECONDS = re.compile(r"restored from the snapshot .* in ([\d.]+) s \(")


async def test_a_restore_longer_than_the_session_timeout_keeps_the_member_in_the_group(
    settings: Settings, tmp_path: Path
) -> None:
    """At the seed's loads a partition's snapshot takes minutes to download, longer than the
    session timeout, and the download runs inside the rebalance's assignment callback, where
    aiokafka sends no heartbeat. The member must stay in the group through it: expelled, it
    would rejoin into another rebalance, and its partitions could move to a member without a
    copy, which would download them again in its own callback.

    A slow link in front of the S3 endpoint makes this data set's snapshots take about four
    session timeouts to download."""
    settings = own_redis_prefix(settings)
    data = dataset.build(events=6_000, seed=31)
    topics = [settings.topic("predictions"), settings.topic("outcomes"), settings.topic("joined")]
    config = worker_settings(settings, tmp_path, "slow")
    log = tmp_path / "worker.log"
    await drained_then_stopped(settings, config, log, data.phase1, "phase 1")
    total = sum(s["bytes"] for s in snapshot_stopped_worker(config))
    shutil.rmtree(config.datadir)
    assert await delete_speed_view(settings) > 0

    assert config.s3_endpoint_url is not None
    endpoint = urllib.parse.urlsplit(config.s3_endpoint_url)
    download_s = 4 * config.session_timeout_s
    rate = int(total / download_s)
    with SlowLink(endpoint.hostname or "", endpoint.port or 80, rate) as link:
        replacement = config.model_copy(
            update={"state_snapshot_restore": True, "s3_endpoint_url": link.url}
        )
        worker = Worker(replacement, log).start()
        try:
            await wait_for(worker.healthy, 90 + download_s, "the replacement's /health")
            await send_records(settings, data.phase2)
            await wait_for(lambda: group_caught_up(settings, topics), 120, "phase 2 processed")
            await check_everything(settings, data, tmp_path)
        except BaseException:
            print(worker.log_tail(80))
            raise
        finally:
            worker.stop()

    lines = last_start(log)
    restore_s = sum(float(m[1]) for line in lines if (m := RESTORE_SECONDS.search(line)))
    print(f"restored {total} bytes from snapshots in {restore_s:.1f} s")
    assert restore_s > 3 * config.session_timeout_s, "the slow link did not slow the restore"
    joins = [line for line in lines if JOINED_GROUP in line]
    assert len(joins) == 1, "the member was expelled during its restore and joined again:\n" + (
        "\n".join(joins)
    )
