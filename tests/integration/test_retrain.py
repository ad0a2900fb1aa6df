"""The retrain agent end to end: real Kafka, a real registry database, the agent and the stand-in
orchestrator as `runway` subprocesses, with the breaker's and retries' timings shortened."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from config.settings import Settings, worker_environment
from registry.store import Store
from stack.processes import free_port
from staleness.events import StalenessEvent
from tests.integration.harness import ROOT, RUNWAY, send_records, wait_for
from tests.integration.registry_support import registry_dsn  # noqa: F401  (fixture)
from tools.traffic import Record

NAMESPACE = uuid.UUID("5b0a6c1e-8d1f-4f57-9a53-7d2f4c1e0a11")  # documented in README
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z


def expected_request_id(model: str, version: str, episode: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{model}/{version}/{episode}"))


def staleness(model: str, state: str, event_time: int, version: str = "1") -> Record:
    event = StalenessEvent(
        model_id=model, model_version=version, state=state,  # type: ignore[arg-type]
        score=0.9 if state == "STALE" else 0.1, basis=["performance"], uncertainty=0.1,
        reason=f"{model} synthetic {state}", event_time=event_time,
        emitted_at=int(time.time() * 1000),
    )  # fmt: skip
    return Record("staleness", model.encode(), event.model_dump_json().encode(), 1)  # type: ignore[arg-type]


@dataclass
class Proc:
    args: list[str]
    settings: Settings
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.process = subprocess.Popen(
            [RUNWAY, *self.args],
            env=worker_environment(self.settings),
            cwd=ROOT,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            (self.process.kill if kill else self.process.terminate)()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass
class Rig:
    settings: Settings
    agent: Proc
    standin: Proc
    store: Store

    @property
    def standin_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.standin_port}"

    async def get(self, url: str) -> Any:
        try:
            async with aiohttp.ClientSession() as http, http.get(url) as response:
                return await response.json()
        except aiohttp.ClientError:
            return None

    async def health(self) -> dict[str, Any] | None:
        return await self.get(f"http://127.0.0.1:{self.settings.retrain_web_port}/health")  # type: ignore[no-any-return]

    async def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.settings.retrain_web_port}/metrics"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            return await response.text()

    async def calls(self) -> list[dict[str, Any]]:
        body = await self.get(f"{self.standin_url}/calls")
        return [] if body is None else list(body["calls"])

    async def control(self, **switches: Any) -> None:
        url = f"{self.standin_url}/control"
        async with aiohttp.ClientSession() as http, http.post(url, json=switches) as response:
            assert response.status == 200, await response.text()

    async def ready(self) -> bool:
        health = await self.health()
        return bool(health and health["ready"]) and await self.get(f"{self.standin_url}/health")


def rig_settings(settings: Settings, tmp_path: Path) -> Settings:
    standin_port = free_port()
    return settings.model_copy(
        update={
            "standin_port": standin_port,
            "retrain_orchestrator_url": f"http://127.0.0.1:{standin_port}",
            "retrain_web_port": free_port(),
            "registry_dsn": f"sqlite:///{tmp_path / 'registry.sqlite3'}",
            "datadir": tmp_path,
            "retrain_reset_timeout_s": 1.0,
            "retrain_call_timeout_s": 2.0,
            "retrain_backoff_base_s": 0.05,
            "retrain_backoff_max_s": 0.2,
            "retrain_poll_s": 0.05,
            "retrain_commit_interval_s": 0.2,
        }
    )


async def open_rig(
    settings: Settings, tmp_path: Path, standin_flags: list[str], **overrides: Any
) -> Rig:
    s = rig_settings(settings, tmp_path).model_copy(update=overrides)
    standin = Proc(["orchestrator-standin", *standin_flags], s, tmp_path / "standin.log").start()
    agent = Proc(["retrain-agent"], s, tmp_path / "agent.log").start()
    store = Store.from_settings(s)
    store.create_schema()
    rig = Rig(s, agent, standin, store)
    await wait_for(rig.ready, 60, "the agent and the stand-in to answer")
    return rig


@pytest.fixture
async def down_rig(settings: Settings, tmp_path: Path) -> AsyncIterator[Rig]:
    rig = await open_rig(settings, tmp_path, ["--down", "--status", "503"])
    yield rig
    await close_rig(rig)


async def close_rig(rig: Rig) -> None:
    rig.agent.stop()
    rig.standin.stop()
    rig.store.dispose()


async def dlq_state(settings: Settings, group: str) -> tuple[int, int]:
    """(records in retrain-dlq, of which the replayer's group has committed past)."""
    topic = settings.topic("retrain_dlq")
    parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    await admin.start()
    try:
        ends = await consumer.end_offsets(parts)
        committed = await admin.list_consumer_group_offsets(group)
        done = sum(min(committed[tp].offset, ends[tp]) for tp in parts if tp in committed)
        return sum(ends.values()), done
    finally:
        await consumer.stop()
        await admin.close()


def count(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_thirty_models_through_an_outage_start_exactly_once(down_rig: Rig) -> None:
    rig = down_rig
    s = rig.settings
    models = [f"model-{i:02d}" for i in range(30)]
    episodes = {m: T0 + i * 1000 for i, m in enumerate(models)}
    expected = {expected_request_id(m, "1", episodes[m]): m for m in models}
    dlq_group = f"{s.app_id}-retrain-dlq"

    began = time.monotonic()
    await send_records(s, [staleness(m, "STALE", episodes[m]) for m in models])

    async def all_dead_lettered() -> bool:
        total, _ = await dlq_state(s, dlq_group)
        return total >= 30

    await wait_for(all_dead_lettered, 60, "30 requests in retrain-dlq")
    dead_lettered_s = time.monotonic() - began

    async def cycles() -> bool:
        health = await rig.health()
        return bool(health and health["breaker_opened"] >= 4)

    await wait_for(cycles, 60, "the breaker to open four times (three failed half-open trials)")
    outage_s = time.monotonic() - began
    failed_calls = len(await rig.calls())
    assert (await dlq_state(s, dlq_group))[0] == 30  # the replayer never re-queues

    await rig.control(down=False)
    recovered = time.monotonic()

    async def drained() -> bool:
        total, done = await dlq_state(s, dlq_group)
        started = [c for c in await rig.calls() if c.get("outcome") == "started"]
        return total == done == 30 and len(started) == 30

    await wait_for(drained, 60, "the DLQ to drain and 30 runs to start")
    drain_s = time.monotonic() - recovered

    calls = await rig.calls()
    started = Counter(c["request_id"] for c in calls if c["outcome"] == "started")
    assert started == Counter({rid: 1 for rid in expected})
    assert [c for c in calls if c["outcome"] == "duplicate"] == []
    assert {c["outcome"] for c in calls} == {"503", "started"}
    assert all(c["workflow_id"] == "runway-retrain" for c in calls)
    for rid, model in expected.items():
        (request,) = rig.store.retrain_requests(model)
        assert (request.request_id, request.status) == (rid, "started")
        assert {step.status for step in request.history} == {"queued", "dead-lettered", "started"}
    health = await rig.health()
    assert health is not None and health["breaker"] == "closed"
    metrics = await rig.metrics()
    assert count(metrics, "runway_retrain_breaker_state") == 0
    assert count(metrics, "runway_retrain_queue_depth") == 0
    opened = count(metrics, "runway_retrain_breaker_opened_total")
    assert opened >= 4
    print(
        "\nretrain e2e: "
        + json.dumps(
            {
                "models": 30,
                "all_dead_lettered_s": round(dead_lettered_s, 2),
                "outage_s": round(outage_s, 2),
                "breaker_opened": opened,
                "calls_during_outage": failed_calls,
                "drain_after_recovery_s": round(drain_s, 2),
                "calls_total": len(calls),
                "runs_started": sum(started.values()),
                "duplicates": 0,
            }
        )
    )


async def test_client_errors_are_not_retried_and_are_recorded_with_the_answer(
    settings: Settings, tmp_path: Path
) -> None:
    rig = await open_rig(settings, tmp_path, ["--down", "--status", "422"])
    try:
        models = ["bad-0", "bad-1", "bad-2"]
        await send_records(rig.settings, [staleness(m, "STALE", T0) for m in models])

        def all_failed() -> bool:
            return all(
                [r.status for r in rig.store.retrain_requests(m)] == ["failed"] for m in models
            )

        await wait_for(all_failed, 30, "three requests recorded failed")
        calls = await rig.calls()
        assert Counter(c["request_id"] for c in calls) == Counter(
            {expected_request_id(m, "1", T0): 1 for m in models}
        )
        for m in models:
            (request,) = rig.store.retrain_requests(m)
            assert request.detail == 'HTTP 422: {"error": "stand-in failing with 422"}'
        health = await rig.health()
        assert health is not None
        assert (health["breaker"], health["consecutive_failures"]) == ("closed", 0)
        assert await dlq_state(rig.settings, f"{rig.settings.app_id}-retrain-dlq") == (0, 0)
    finally:
        await close_rig(rig)


async def test_episode_and_cooldown_memory_survive_a_sigkill(
    settings: Settings, tmp_path: Path
) -> None:
    rig = await open_rig(settings, tmp_path, [])
    try:
        s = rig.settings
        await send_records(s, [staleness("keep", "STALE", T0)])

        async def started() -> bool:
            return [c["outcome"] for c in await rig.calls()] == ["started"]

        await wait_for(started, 30, "the first run to start")
        await wait_for(lambda: committed(s, 1), 30, "the agent to commit past the first event")
        rig.agent.stop(kill=True)
        rig.agent.start()
        await wait_for(rig.ready, 60, "the restarted agent")
        hour = 3600 * 1000
        later = [
            staleness("keep", "STALE", T0 + hour),  # the same episode
            staleness("keep", "FRESH", T0 + 2 * hour),
            staleness("keep", "STALE", T0 + 3 * hour),  # a new episode inside the cooldown
            staleness("other", "STALE", T0 + 3 * hour),  # a marker that must be requested
        ]
        await send_records(s, later)

        async def marker_started() -> bool:
            return len([c for c in await rig.calls() if c["outcome"] == "started"]) == 2

        await wait_for(marker_started, 30, "the marker model's run")
        await wait_for(lambda: committed(s, 5), 30, "the agent to commit past every event")
        calls = await rig.calls()
        assert [(c["request_id"], c["outcome"]) for c in calls] == [
            (expected_request_id("keep", "1", T0), "started"),
            (expected_request_id("other", "1", T0 + 3 * hour), "started"),
        ]
        (keep,) = rig.store.retrain_requests("keep")
        assert keep.status == "started"
    finally:
        await close_rig(rig)


async def committed(settings: Settings, records: int) -> bool:
    """The agent's group has committed `records` staleness records in all."""
    topic = settings.topic("staleness")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{settings.app_id}-retrain")
    finally:
        await admin.close()
    return (
        sum(m.offset for tp, m in offsets.items() if tp.topic == topic and m.offset > 0) == records
    )


async def test_a_poisoned_request_is_parked_after_n_replays_and_the_next_is_delivered(
    settings: Settings,
    tmp_path: Path,
    registry_dsn: str,  # noqa: F811
) -> None:
    """The orchestrator fails every call for one model and serves the others. Its request is
    dead-lettered, fails its replays (each a half-open trial that reopens the breaker) and is
    parked after RUNWAY_RETRAIN_MAX_REPLAYS of them; the request queued behind it is then
    delivered."""
    replays = 3
    rig = await open_rig(
        settings, tmp_path, ["--poison", "poison", "--status", "503"],
        registry_dsn=registry_dsn, retrain_max_replays=replays, retrain_reset_timeout_s=3.0,
    )  # fmt: skip
    try:
        s = rig.settings
        dlq_group = f"{s.app_id}-retrain-dlq"
        await send_records(s, [staleness("poison", "STALE", T0)])

        async def in_dlq(records: int) -> bool:
            return (await dlq_state(s, dlq_group))[0] == records

        await wait_for(lambda: in_dlq(1), 60, "the poisoned request dead-lettered")

        async def open_for_a_while() -> bool:  # so the next request cannot be a trial
            health = await rig.health()
            return bool(health and health["breaker"] == "open"
                        and health["seconds_until_half_open"] > 2.0)  # fmt: skip

        await wait_for(open_for_a_while, 30, "the breaker freshly open")
        await send_records(s, [staleness("next", "STALE", T0)])
        await wait_for(lambda: in_dlq(2), 30, "the next request dead-lettered behind it")

        async def next_started() -> bool:
            return any(c["outcome"] == "started" for c in await rig.calls())

        await wait_for(next_started, 90, "the request behind the poisoned one to start")

        async def dlq_drained() -> bool:
            return await dlq_state(s, dlq_group) == (2, 2)

        await wait_for(dlq_drained, 30, "both dead letters settled and committed")
        calls = await rig.calls()
        poison_id = expected_request_id("poison", "1", T0)
        next_id = expected_request_id("next", "1", T0)
        # 5 attempts before it was dead-lettered, then one failed trial per replay
        assert [c["outcome"] for c in calls if c["request_id"] == poison_id] == ["503"] * (5 + 3)
        assert [c["outcome"] for c in calls if c["request_id"] == next_id] == ["started"]

        (poison,) = rig.store.retrain_requests("poison")
        assert poison.status == "parked"
        assert poison.detail == (
            f"parked after {replays} failed replays; last: circuit opened after 1 attempts: "
            'HTTP 503: {"error": "stand-in failing with 503"}'
        )
        assert [h.status for h in poison.history] == ["queued", "dead-lettered", "parked"]
        (served,) = rig.store.retrain_requests("next")
        assert served.status == "started"
        assert [h.status for h in served.history] == ["queued", "dead-lettered", "started"]
        assert served.history[-1].at >= poison.history[-1].at  # served after the parking
        assert [r.request_id for r in rig.store.parked_retrains()] == [poison_id]

        metrics = await rig.metrics()
        assert count(metrics, 'runway_retrain_parked_total{reason="http_503"}') == 1
        assert count(metrics, "runway_retrain_dlq_replayed_total") == 2
    finally:
        await close_rig(rig)
