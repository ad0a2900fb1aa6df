"""RUNWAY_GROUP_INSTANCE_ID reaches the join group's aiokafka consumer as its group.instance.id.

Static membership is what keeps a restarted worker's partitions (and so its state) in place
(docs/capacity.md); the chain is ours (settings -> Faust's consumer_group_instance_id) and
Faust's (-> aiokafka's group_instance_id, which skips LeaveGroup on stop). Checked on the
consumer Faust builds, without a broker: aiokafka connects only at start.
"""

from __future__ import annotations

from typing import Any

import pytest

from config.settings import Settings
from streams.app import FAUST_REQUEST_TIMEOUT_S, create_app


def worker_consumer(settings: Settings) -> Any:
    app = create_app(settings)
    thread: Any = app.consumer._thread  # type: ignore[attr-defined]
    return thread._create_worker_consumer(app.transport)


async def test_the_default_is_dynamic_membership() -> None:
    assert Settings().group_instance_id == ""
    consumer = worker_consumer(Settings())
    assert consumer._group_instance_id is None
    assert create_app(Settings()).conf.broker_request_timeout == FAUST_REQUEST_TIMEOUT_S


async def test_the_id_is_the_consumers_group_instance_id() -> None:
    consumer = worker_consumer(Settings(group_instance_id="runway-worker-3"))
    assert consumer._group_instance_id == "runway-worker-3"
    assert consumer._coordinator is None  # built at start, from the same attribute


@pytest.mark.parametrize("session_s", [30.0, 90.0, 300.0])
async def test_a_session_timeout_of_minutes_is_accepted(session_s: float) -> None:
    """Faust refuses a session timeout above its request timeout (90 s by default): the
    request timeout follows the session timeout up, never below Faust's default."""
    settings = Settings(group_instance_id="w-0", session_timeout_s=session_s)
    consumer = worker_consumer(settings)
    assert consumer._session_timeout_ms == int(session_s * 1000)
    assert consumer._client._request_timeout_ms == int(
        max(session_s, FAUST_REQUEST_TIMEOUT_S) * 1000
    )
