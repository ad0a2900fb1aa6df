"""Broker faults and service outages while the join carries load (issue 14, items 1 and 2).

In every case a paced generator sends the crafted data set (`dataset.py`) while one worker
joins it, the fault happens mid-stream and ends, and then:

- the speed view and the batch view equal the independent oracle (`oracle.py`): 0 pairs lost,
  0 written twice, every figure exact;
- the worker never restarted: the same process, alive, one start line in its log;
- the catch-up time is measured: from the fault's end until the join's group has committed
  every input record that existed at that moment (the backlog the fault left), and written with
  the other figures as a JSON line to `var/faults/results.jsonl` (and printed).

Every faulted service is a private one of this module (`faults.PrivateStack`): a three-broker
cluster on its own ports, and per case its own Redis, moto S3 or PostgreSQL. The shared stack is
never touched. `make test` runs the cases without the `faults` mark (a short leader kill, a short
Redis outage); `make test-faults` runs the full-length ones.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa
from aiokafka import TopicPartition

from config.settings import Settings, worker_environment
from sinks.batch_view import open_filesystem
from stack.errors import StackError
from stack.plan import local_s3_credentials
from stack.processes import START_MARK, RunwayProcess, free_port
from stack.topics import ensure_topics
from streams.producer import make_producer
from tests.integration import dataset, oracle
from tests.integration.faults import (
    Generator,
    PrivateStack,
    Report,
    admin_client,
    catch_up_time,
    committed_reach,
    end_offsets,
    fully_replicated,
    generating,
    leader_of,
    paused,
)
from tests.integration.harness import (
    Worker,
    read_parquet,
    read_topic,
    safety_nets_used,
    wait_for,
)
from tests.integration.test_join import (
    check_views,
    redis_snapshot,
    run_until_done,
    view_matches,
    worker_settings,
)

pytestmark = pytest.mark.integration

Fault = Callable[[Worker], Awaitable[dict[str, Any]]]


@pytest.fixture(scope="module")
async def private_cluster(stack: Any) -> AsyncIterator[PrivateStack]:
    """A three-broker cluster of this module's own (RF 3, min ISR 2), stopped at the end."""
    own = PrivateStack.create("cluster")
    try:
        await own.start_cluster()
    except StackError as exc:
        own.discard()
        pytest.fail(f"the private three-broker cluster could not start: {exc}", pytrace=False)
    try:
        yield own
    finally:
        own.discard()


@pytest.fixture(scope="module")
def shared_cluster(cluster: Any) -> PrivateStack:
    """The session's own three-broker cluster, for `make test`'s short case: its start is paid
    once for the whole suite (a private one cost 80-130 s more). Its broker comes back within
    the test; it is never discarded."""
    return PrivateStack(cluster.settings)


def _tag() -> str:
    return uuid.uuid4().hex[:8]


async def cluster_case(own: PrivateStack) -> Settings:
    """The production profile on the private cluster; Redis is the shared one (own prefix)."""
    tag = _tag()
    settings = Settings(
        profile="production",
        kafka_bootstrap=own.cluster.bootstrap,
        topic_prefix=f"faults-{tag}-",
        app_id=f"faults-{tag}",
        redis_key_prefix=f"faults-{tag}",
        partitions=4,
        **local_s3_credentials(),
    )
    await ensure_topics(settings)
    await wait_for(lambda: fully_replicated(settings, 3), 120, "topics fully replicated")
    return settings


def service_case(settings: Settings) -> Settings:
    return settings.model_copy(update={"redis_key_prefix": settings.app_id})


@dataclass
class Load:
    events: int
    send_s: float
    seed: int = 41


async def under_load(
    name: str,
    settings: Settings,
    tmp: Path,
    load: Load,
    fault: Fault,
    read_rows: Callable[[], list[dict[str, Any]]] | None = None,
    **worker_extra: Any,
) -> dict[str, Any]:
    """The generator runs, one worker joins, `fault` happens and ends; then everything is
    checked and the case's figures reported. `fault` returns its own figures (with `fault_s`)
    once the fault has ended."""
    data = dataset.build(events=load.events, seed=load.seed)
    worker = Worker(worker_settings(settings, tmp, "w", **worker_extra), tmp / "w.log").start()
    pid = worker.pid
    report = Report(name)
    topics = [settings.topic(t) for t in ("predictions", "outcomes", "joined")]
    generator = Generator(settings, data.phase1, load.send_s)
    try:
        await wait_for(worker.healthy, 120, "the worker's /health")
        async with generating(generator) as sending:
            await wait_for(
                lambda: "rows written" in worker.log_tail(2000), 120, "the join under load"
            )
            figures = await fault(worker)
            ended = time.monotonic()
            report.fault_s = figures.pop("fault_s")
            caught = await catch_up_time(settings, settings.app_id, topics, ended, 600)
            report.catch_up_s = caught.seconds
            report.figures["backlog_at_fault_end"] = caught.backlog
            report.figures.update(figures)
            await asyncio.wait_for(sending, 600)
        report.figures["events"] = load.events
        report.figures["records_sent"] = generator.sent
        report.figures["rate_events_per_s"] = round(load.events / load.send_s)
        await run_until_done(settings, data)
        rows = read_rows or (lambda: read_parquet(tmp / "batch-view"))
        report.figures.update(await check_exact(settings, data, rows))
        alive = worker.alive() and worker.pid == pid
        starts = worker.log_path.read_text(errors="replace").count(START_MARK)
        holes, seeks = safety_nets_used([worker.log_path])
        report.figures.update(
            holes_filled=len(holes), watchdog_seeks=len(seeks), worker_restarts=starts - 1
        )
        line = report.write()  # the figures, whatever the verdict below
        assert alive, f"the worker exited ({worker.process and worker.process.poll()})"
        assert starts == 1, "the worker was restarted"
        assert (holes, seeks) == ([], []), "a safety net was used (see docs/faults.md)"
    except BaseException:
        print(worker.log_tail(120))
        raise
    finally:
        worker.stop()
    return line


async def check_exact(
    settings: Settings, data: dataset.DataSet, read_rows: Callable[[], list[dict[str, Any]]]
) -> dict[str, int]:
    """The speed view equals the oracle; the batch view holds every pair once; dead letters are
    the malformed inputs. Returns the lost/doubled counts (asserted zero)."""
    expected = oracle.expected(data.records, data.truth, data.orphans, data.late)
    tasks = {m.model_id: m.task for m in data.truth.models}

    async def views_settled() -> dict[str, dict[str, str]] | None:
        snapshot = await redis_snapshot(settings)
        return snapshot if view_matches(snapshot, expected, settings, tasks) else None

    try:
        await wait_for(views_settled, 120, "the speed view to match the oracle")
    except AssertionError:
        check_views(await redis_snapshot(settings), expected, settings, tasks)  # says what
        raise
    try:
        rows = await wait_for(
            lambda: (r := read_rows()) and len(r) >= len(expected.joined) and r,
            120,
            "the batch view",
        )
    except AssertionError:
        rows = read_rows()
    ids = [row["prediction_id"] for row in rows]
    counts = {
        "pairs": len(expected.joined),
        "lost": len(set(expected.joined) - set(ids)),
        "doubled": len(ids) - len(set(ids)),
        "unexpected": len(set(ids) - set(expected.joined)),
    }
    print(f"batch view: {counts}")
    assert (counts["lost"], counts["doubled"], counts["unexpected"]) == (0, 0, 0), counts
    for row in rows:
        want = expected.joined[row["prediction_id"]]
        assert {k: row[k] for k in want} == want
    letters = await read_topic(settings, settings.topic("dead_letters"))
    unique = {
        (e["source_topic"], e["source_partition"], e["source_offset"], e["index"])
        for e in (orjson.loads(value) for _, value in letters)
    }
    assert len(unique) == expected.dead_letters
    return counts


def health_of(worker: Worker) -> dict[str, Any]:
    """/health's JSON whatever its status code ({} when it does not answer)."""
    url = f"http://{worker.settings.web_host}:{worker.settings.web_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return dict(orjson.loads(response.read()))
    except urllib.error.HTTPError as exc:
        return dict(orjson.loads(exc.read()))
    except (OSError, ValueError):
        return {}


async def hold(seconds: float, worker: Worker, seen: list[dict[str, Any]]) -> None:
    """Keep a fault on for `seconds` (its length, not a wait for anything), sampling /health."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.append(await asyncio.to_thread(health_of, worker))
        assert worker.alive(), "the worker exited during the fault"
        await asyncio.sleep(min(1.0, max(deadline - time.monotonic(), 0)))


# -- 1. broker faults on the three-broker cluster ----------------------------------------------


async def test_leader_of_input_partitions_killed_and_restarted(
    shared_cluster: PrivateStack, tmp_path: Path
) -> None:
    await leader_killed_and_restarted(shared_cluster, tmp_path, 4.0, Load(10_000, 15.0))


@pytest.mark.faults
async def test_leader_of_input_partitions_killed_and_restarted_30s(
    private_cluster: PrivateStack, tmp_path: Path
) -> None:
    await leader_killed_and_restarted(private_cluster, tmp_path, 30.0, Load(60_000, 80.0))


async def leader_killed_and_restarted(
    own: PrivateStack, tmp_path: Path, down_s: float, load: Load
) -> None:
    settings = await cluster_case(own)

    async def fault(worker: Worker) -> dict[str, Any]:
        node = await leader_of(settings, settings.topic("predictions"), 0)
        led = await partitions_led_by(settings, node)
        started = time.monotonic()
        killed = own.kill_broker(node)
        seen: list[dict[str, Any]] = []
        await hold(down_s, worker, seen)
        restarting = time.monotonic()
        await own.start_brokers([node])
        fault_s = time.monotonic() - started
        restart_s = time.monotonic() - restarting
        await wait_for(lambda: fully_replicated(settings, 3), 300, "the ISR to be whole again")
        return {
            "fault_s": fault_s,
            "held_s": down_s,
            "broker_restart_s": round(restart_s, 1),
            "broker": node,
            "broker_pid": killed,
            "input_partitions_led": led,
            "isr_whole_after_s": round(time.monotonic() - started - fault_s, 1),
        }

    await under_load(f"leader_sigkill_{down_s:.0f}s", settings, tmp_path, load, fault)


async def partitions_led_by(settings: Settings, node: int) -> int:
    async with admin_client(settings) as admin:
        described = await admin.describe_topics(
            [settings.topic("predictions"), settings.topic("outcomes")]
        )
    return sum(1 for t in described for p in t["partitions"] if p["leader"] == node)


@pytest.mark.faults
async def test_rolling_restart_of_all_three_brokers(
    private_cluster: PrivateStack, tmp_path: Path
) -> None:
    settings = await cluster_case(private_cluster)
    own = private_cluster

    async def fault(worker: Worker) -> dict[str, Any]:
        started = time.monotonic()
        each = []
        for node in (1, 2, 3):
            began = time.monotonic()
            own.stop([own.broker_name(node)])  # controlled shutdown, as a rolling upgrade does
            await own.start_brokers([node])
            await wait_for(lambda: fully_replicated(settings, 3), 300, "the ISR to be whole")
            assert worker.alive(), "the worker exited during the rolling restart"
            each.append(round(time.monotonic() - began, 1))
        return {"fault_s": time.monotonic() - started, "per_broker_s": each}

    await under_load("rolling_restart", settings, tmp_path, Load(60_000, 90.0), fault)


@pytest.mark.faults
async def test_two_brokers_down_at_once(private_cluster: PrivateStack, tmp_path: Path) -> None:
    """Two of three down: no partition has two replicas in sync (min ISR 2) and the KRaft quorum
    is lost, so every acks=all write waits. The worker's checkpoints retry within
    RUNWAY_CHECKPOINT_RETRY_TIMEOUT_S (300 s here: the outage is 60 s, plus the two brokers'
    restart, which took up to 100 s on the loaded test machine) and nothing is lost."""
    settings = await cluster_case(private_cluster)
    own = private_cluster
    retry_timeout_s = 300.0

    async def fault(worker: Worker) -> dict[str, Any]:
        leader = await leader_of(settings, settings.topic("predictions"), 0)
        nodes = sorted({leader, 1 if leader != 1 else 2})
        started = time.monotonic()
        for node in nodes:
            own.kill_broker(node)
        seen: list[dict[str, Any]] = []
        await hold(60.0, worker, seen)
        restarting = time.monotonic()
        await own.start_brokers(nodes)
        fault_s = time.monotonic() - started
        restart_s = time.monotonic() - restarting
        await wait_for(lambda: fully_replicated(settings, 3), 300, "the ISR to be whole again")
        retries = worker.log_tail(100_000).count("; retrying (attempt")
        assert retries > 0, "no checkpoint waited: the outage did not reach the worker's writes"
        assert fault_s < retry_timeout_s
        return {
            "fault_s": fault_s,
            "held_s": 60.0,
            "brokers_restart_s": round(restart_s, 1),
            "brokers": nodes,
            "checkpoint_retries": retries,
            "isr_whole_after_s": round(time.monotonic() - started - fault_s, 1),
        }

    await under_load(
        "two_brokers_down",
        settings,
        tmp_path,
        Load(60_000, 90.0),
        fault,
        checkpoint_retry_timeout_s=retry_timeout_s,
    )


# -- 2. service outages ----------------------------------------------------------------------


@pytest.fixture
async def own_services() -> AsyncIterator[PrivateStack]:
    own = PrivateStack.create("services")
    try:
        yield own
    finally:
        own.discard()


@pytest.mark.parametrize(
    ("down_s", "load"),
    [
        pytest.param(4.0, Load(10_000, 15.0), id="4s"),
        pytest.param(60.0, Load(60_000, 90.0), id="60s", marks=pytest.mark.faults),
    ],
)
async def test_redis_down(
    settings: Settings, own_services: PrivateStack, tmp_path: Path, down_s: float, load: Load
) -> None:
    """Redis is killed (it keeps nothing on disk: it comes back empty) and started again after
    `down_s`: the join goes on and commits, /health says degraded, and the speed view is
    rebuilt from the tables' state when Redis answers again."""
    own = own_services
    await own.start([own.redis()])
    redis_url = f"redis://127.0.0.1:{own.settings.stack_redis_port}/0"
    settings = service_case(settings).model_copy(update={"redis_url": redis_url})

    async def rebuilt() -> bool:
        names = set(await redis_snapshot(settings))
        return all(f"{settings.redis_key_prefix}:model:{m}:window:1h" in names for m in seen_models)

    seen_models: list[str] = []

    async def fault(worker: Worker) -> dict[str, Any]:
        seen_models.extend(
            sorted(
                {
                    name.split(":model:")[1].split(":")[0]
                    for name in await redis_snapshot(settings)
                    if ":window:1h" in name
                }
            )
        )
        assert seen_models, "no speed view written before the outage"
        joined_before = await end_offsets(settings, [settings.topic("joined")])
        started = time.monotonic()
        own.kill("redis", [own.settings.stack_redis_port])
        seen: list[dict[str, Any]] = []
        await hold(down_s, worker, seen)
        joined_during = await end_offsets(settings, [settings.topic("joined")])
        await own.start([own.redis()])
        fault_s = time.monotonic() - started
        back = time.monotonic()
        await wait_for(rebuilt, 300, "the speed view rebuilt")
        degraded = [h for h in seen if h.get("status") == "degraded"]
        assert degraded, f"/health never said degraded while Redis was down: {seen[-3:]}"
        joined_while_down = sum(joined_during.values()) - sum(joined_before.values())
        assert joined_while_down > 0, "the join stopped while Redis was down"
        return {
            "fault_s": fault_s,
            "speed_view_rebuilt_s": round(time.monotonic() - back, 1),
            "joined_records_while_down": joined_while_down,
            "health_while_down": degraded[-1].get("reasons"),
        }

    await under_load(f"redis_down_{down_s:.0f}s", settings, tmp_path, load, fault)


@pytest.mark.faults
async def test_s3_unreachable(
    settings: Settings, own_services: PrivateStack, tmp_path: Path
) -> None:
    """moto (objects in memory) is frozen with SIGSTOP for 60 s, so the S3 endpoint accepts
    connections and never answers: the batch view keeps its buffers and its offsets (the group's
    committed offsets on `joined` do not move), /health says degraded, the join goes on; after
    SIGCONT the view is written and is exact."""
    own = own_services
    s3 = own.s3()
    await own.start([s3])
    prefix = f"faults-{_tag()}"
    settings = service_case(settings).model_copy(
        update={"s3_endpoint_url": s3.endpoint_url, **local_s3_credentials()}
    )
    uri = f"s3://{settings.s3_bucket}/{prefix}"

    def rows() -> list[dict[str, Any]]:
        filesystem, root = open_filesystem(
            uri, s3.endpoint_url, "runway", "runway-secret", settings.s3_region
        )
        try:
            dataset_ = ds.dataset(
                root, filesystem=filesystem, format="parquet", partitioning="hive"
            )
            return list(dataset_.to_table().to_pylist())
        except (FileNotFoundError, OSError):
            return []

    joined = settings.topic("joined")

    async def committed_joined() -> dict[int, int]:
        async with admin_client(settings) as admin:
            offsets = await admin.list_consumer_group_offsets(settings.app_id)
        return {
            p: offsets[TopicPartition(joined, p)].offset
            for p in range(settings.partitions)
            if TopicPartition(joined, p) in offsets
        }

    async def fault(worker: Worker) -> dict[str, Any]:
        pid = own.pid("s3")
        started = time.monotonic()
        seen: list[dict[str, Any]] = []
        with paused(pid):
            await hold(10.0, worker, seen)  # flushes already on their way settle first
            held = await committed_joined()
            await hold(50.0, worker, seen)
            still = await committed_joined()
            joined_ends = await end_offsets(settings, [joined])
        fault_s = time.monotonic() - started
        assert still == held, f"batch-view offsets moved while S3 was unreachable: {held} {still}"
        backlog = sum(joined_ends.values()) - sum(held.values())
        assert backlog > 0, "the join stopped while S3 was unreachable"
        degraded = [h for h in seen if h.get("status") == "degraded"]
        assert degraded, f"/health never said degraded while S3 was unreachable: {seen[-3:]}"
        return {
            "fault_s": fault_s,
            "joined_records_held": backlog,
            "health_while_down": degraded[-1].get("reasons"),
        }

    await under_load(
        "s3_unreachable_60s",
        settings,
        tmp_path,
        Load(60_000, 90.0),
        fault,
        read_rows=rows,
        batch_view_uri=uri,
    )


STALENESS = {
    "schema_version": 1, "model_version": "v1", "state": "WARNING", "score": 0.5,
    "basis": ["drift"], "uncertainty": 0.3, "reason": "faults test", "metrics": {"psi": 0.2},
    "impacted": [],
}  # fmt: skip


@pytest.mark.faults
async def test_postgres_down(
    settings: Settings, own_services: PrivateStack, tmp_path: Path
) -> None:
    """The registry's PostgreSQL goes away for 60 s while the join runs and staleness events
    flow: the registry agent retries and commits nothing meanwhile, the API serves its cached
    copy with a stale warning and /health says degraded; afterwards every event on the topic is
    a row, once."""
    own = own_services
    await own.start([own.postgres()])
    dsn = f"postgresql://runway@127.0.0.1:{own.settings.stack_postgres_port}/runway"
    settings = service_case(settings).model_copy(
        update={
            "registry_dsn": dsn,
            "registry_group_id": f"{settings.app_id}-registry",
            "api_port": free_port(),
            "api_token": "faults-token",
            "registry_agent_metrics_port": free_port(),
            "registry_db_timeout_s": 2.0,
        }
    )
    env = worker_environment(settings)
    api_url = f"http://127.0.0.1:{settings.api_port}"
    agent = RunwayProcess(
        "registry agent", ["registry-agent"], env, tmp_path / "agent.log", None
    ).start()
    api = RunwayProcess(
        "registry API", ["api"], env, tmp_path / "api.log", f"{api_url}/health"
    ).start()
    staleness = settings.topic("staleness")
    producing = asyncio.Event()
    sent_events: list[dict[str, Any]] = []

    async def staleness_source() -> None:
        """Verdicts of three registry models, two a second, next to the worker's own."""
        producer = make_producer(settings)
        await producer.start()
        try:
            i = 0
            while not producing.is_set():
                model = f"reg-{i % 3}"
                event = {
                    **STALENESS,
                    "model_id": model,
                    "event_time": 1_700_000_000_000 + i,
                    "emitted_at": int(time.time() * 1000),
                }
                await producer.send_and_wait(staleness, orjson.dumps(event), key=model.encode())
                sent_events.append(event)
                i += 1
                await asyncio.sleep(0.5)  # the source's pace
        finally:
            await producer.stop()

    def api_json(path: str) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"{api_url}{path}", timeout=5) as response:
                return response.status, dict(orjson.loads(response.read()))
        except urllib.error.HTTPError as exc:
            return exc.code, dict(orjson.loads(exc.read()))

    def agent_retries() -> float:
        url = f"http://127.0.0.1:{settings.registry_agent_metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("runway_registry_agent_db_retries_total"):
                    return float(line.split()[-1])
        return 0.0

    source: asyncio.Task[None] | None = None
    try:
        await wait_for(lambda: api.health() is not None, 120, "the registry API")
        auth = {"Authorization": "Bearer faults-token"}
        for model in ("reg-0", "reg-1", "reg-2"):
            request = urllib.request.Request(
                f"{api_url}/models",
                data=orjson.dumps({"model_id": model, "task": "binary"}),
                headers={**auth, "Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 201
        request = urllib.request.Request(
            f"{api_url}/dependencies",
            data=orjson.dumps({"upstream": "reg-0", "downstream": "reg-1", "kind": "model"}),
            headers={**auth, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
        source = asyncio.create_task(staleness_source())

        async def fault(worker: Worker) -> dict[str, Any]:
            assert agent.alive(), agent.log_tail()
            await wait_for(lambda: agent_retries() >= 0, 60, "the agent's metrics")
            group = settings.registry_group_id
            started = time.monotonic()
            own.stop(["postgres"])
            seen: list[dict[str, Any]] = []
            await hold(15.0, worker, seen)
            impact = await asyncio.to_thread(api_json, "/models/reg-0/impact")
            health = await asyncio.to_thread(api_json, "/health")
            retries_during = await asyncio.to_thread(agent_retries)
            await hold(45.0, worker, seen)
            await own.start([own.postgres()])
            fault_s = time.monotonic() - started
            back = time.monotonic()
            assert impact[1]["source"] == "cache" and impact[1]["stale"] is True, impact
            assert impact[1]["impacted"] == ["reg-1"], impact
            assert health == (
                200,
                {
                    "status": "degraded",
                    "checks": {"kafka": "ok", "redis": "ok", "database": "down"},
                },
            ), health
            assert retries_during > 0, "the registry agent did not retry the database"
            assert agent.alive() and api.alive(), "a registry process exited"
            registry = await catch_up_time(settings, group, [staleness], back, 300)
            return {
                "fault_s": fault_s,
                "registry_catch_up_s": round(registry.seconds, 1),
                "registry_backlog_at_fault_end": registry.backlog,
                "agent_db_retries": retries_during,
            }

        report = await under_load(
            "postgres_down_60s", settings, tmp_path, Load(40_000, 90.0), fault
        )
        producing.set()
        await source
        source = None
        ends = await end_offsets(settings, [staleness])
        await wait_for(
            lambda: committed_reach(settings, settings.registry_group_id, ends),
            120,
            "the registry agent to record every event",
        )
        on_topic = {
            (e["model_id"], e["event_time"], e["emitted_at"])
            for e in (orjson.loads(v) for _, v in await read_topic(settings, staleness))
        }
        engine = sa.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as conn:
                stored = conn.execute(
                    sa.text("SELECT model_id, event_time, emitted_at FROM staleness")
                ).all()
        finally:
            engine.dispose()
        rows = [(m, int(t), int(e)) for m, t, e in stored]
        print(
            f"registry: {len(on_topic)} events on the topic ({len(sent_events)} sent by the "
            f"test), {len(rows)} rows; {report['catch_up_s']} s join catch-up"
        )
        assert len(rows) == len(set(rows)), "an event was recorded twice"
        assert set(rows) == on_topic
        status, detail = await asyncio.to_thread(api_json, "/models/reg-0/impact")
        assert (status, detail["source"], detail["stale"]) == (200, "database", False), detail
    finally:
        producing.set()
        if source is not None:
            source.cancel()
        agent.stop()
        api.stop()
