"""What a standby replica costs: changelog records applied per CPU-second of the worker holding it.

Why: a standby is the same changelog apply running all the time beside the join it mirrors; its
cost per record decides whether a worker near its throughput can carry one (docs/capacity.md,
"Standby replicas"). Method: two workers (join agent only) on 2 partitions with one standby
replica; each is active for one partition and standby for the other. The backlog is sent to
worker X's partition only, so worker Y's extra CPU (less its idle rate, measured first) is the
standby of X's join changelog. Y is done when its CPU rate falls back to idle for 4 s after X
has committed the backlog. `--profile` records Y with py-spy (raw collapsed stacks), `--faust`
turns the bulk apply off (`RUNWAY_STANDBY_BULK_APPLY=false`) for the comparison.

    python -m tools.bench_standby --events 300000 [--faust] [--profile]

One JSON line, also appended to var/bench/standby.jsonl; topics and data directories are this
run's own (var/bench/standby/<tag>/, kept for inspection).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from config.connections import kafka_options
from config.settings import Settings, load_settings
from stack.processes import WorkerProcess, free_port
from stack.topics import ensure_topics
from streams.producer import make_producer
from tools.bench import backlog_spec, cpu_seconds
from tools.traffic import generate

OUT = Path("var/bench")
PYSPY = str(Path(sys.executable).parent / "py-spy")
SETTLE_TIMEOUT_S = 180.0
DRAIN_TIMEOUT_S = 1800.0


async def end_offsets(settings: Settings, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**kafka_options(settings))
    await consumer.start()
    try:
        return {tp: int(offset) for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def committed(settings: Settings) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.app_id)
        return {tp: meta.offset for tp, meta in offsets.items() if meta is not None}
    finally:
        await admin.close()


async def settled(workers: dict[str, WorkerProcess]) -> dict[str, list[int]]:
    """Each worker's join partitions once both answer ok and own one partition each."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    owned: dict[str, list[int]] = {}
    while time.monotonic() < deadline:
        owned = {}
        for name, worker in workers.items():
            health = await asyncio.to_thread(worker.health)
            if health and health.get("status") == "ok" and health.get("join_partitions"):
                owned[name] = list(health["join_partitions"])
        if len(owned) == 2 and sorted(owned["x"] + owned["y"]) == [0, 1]:
            return owned
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the two workers did not settle on one partition each: {owned}")


async def send_backlog(settings: Settings, events: int, partition: int) -> int:
    """The backlog, every record to `partition` (the active's): the other partition idles."""
    producer = make_producer(settings)
    await producer.start()
    sent = 0
    try:
        futures: list[Any] = []
        for record in generate(backlog_spec(8, events, 100, settings.app_id), random.Random(1)):
            topic = settings.topic(record.topic)
            futures.append(
                await producer.send(topic, record.value, key=record.key, partition=partition)
            )
            sent += record.events
            if len(futures) >= 500:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


async def run(events: int, bulk: bool, profile: bool) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    settings = load_settings().model_copy(
        update={
            "topic_prefix": f"bench-standby-{tag}-",
            "app_id": f"bench-standby-{tag}",
            "redis_key_prefix": f"bench-standby-{tag}",
            "partitions": 2,
            "table_standby_replicas": 1,
            "standby_bulk_apply": bulk,
            "agents": "join",
            "session_timeout_s": 10.0,
            "heartbeat_interval_s": 1.0,
        }
    )
    await ensure_topics(settings)
    work = OUT / "standby" / tag
    workers = {
        name: WorkerProcess(
            settings.model_copy(
                update={
                    "datadir": work / name,
                    "web_port": free_port(),
                    "batch_view_uri": str(work / "batch-view"),
                }
            ),
            work / f"{name}.log",
        ).start()
        for name in ("x", "y")
    }
    try:
        owned = await settled(workers)
        await asyncio.sleep(5)  # the standby assignment's recovery settles too
        partition = owned["x"][0]
        pid = workers["y"].pid
        assert pid is not None
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(10)
        idle_rate = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
        changelog = TopicPartition(f"{settings.app_id}-join-changelog", partition)
        before = (await end_offsets(settings, [changelog]))[changelog]
        spy = None
        if profile:
            spy = subprocess.Popen(
                [PYSPY, "record", "--pid", str(pid), "--format", "raw", "-r", "50"]
                + ["-o", str(work / "standby.raw"), "--duration", "3600"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        sent = await send_backlog(settings, events, partition)
        inputs = [TopicPartition(settings.topic(t), partition) for t in ("predictions", "outcomes")]
        ends = await end_offsets(settings, inputs)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while True:
            got = await committed(settings)
            if all(got.get(tp, -1) >= end for tp, end in ends.items()):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the active did not drain the backlog")
            await asyncio.sleep(0.5)
        drained = time.monotonic()
        after = (await end_offsets(settings, [changelog]))[changelog]
        samples = [(time.monotonic(), cpu_seconds(pid))]
        while True:  # the standby is done when its CPU rate is back at idle for 4 s
            await asyncio.sleep(1.0)
            samples.append((time.monotonic(), cpu_seconds(pid)))
            if len(samples) >= 5:
                (ta, ca), (tb, cb) = samples[-5], samples[-1]
                if (cb - ca) / (tb - ta) < idle_rate + 0.03:
                    done_t, done_cpu = ta, ca
                    break
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=60)
        records = after - before
        cpu = done_cpu - cpu1 - idle_rate * (done_t - t1)
        return {
            "bulk": bulk,
            "tag": tag,
            "events": sent,
            "changelog_records": records,
            "standby_cpu_s": round(cpu, 2),
            "records_per_cpu_s": round(records / cpu, 1) if cpu > 0 else None,
            "idle_cpu_rate": round(idle_rate, 4),
            "drain_s": round(drained - t1, 1),
            "standby_done_after_drain_s": round(done_t - drained, 1),
            "profile": str(work / "standby.raw") if profile else None,
        }
    finally:
        for worker in workers.values():
            worker.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--faust", action="store_true", help="Faust's own per-record path")
    parser.add_argument("--profile", action="store_true", help="py-spy the standby's worker")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.events, bulk=not args.faust, profile=args.profile))
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "standby.jsonl").open("a") as out:
        out.write(json.dumps(result) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
