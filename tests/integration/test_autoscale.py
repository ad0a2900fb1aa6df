"""`runway autoscale` end to end: real Kafka, Redis, Parquet, real worker processes.

Two cores cannot show more workers draining faster on their own, so every worker's input is
capped (`max_events_per_s`, well below a core's capacity) and the bounds shrink to 1..4 workers,
5 s up / 2 s down, 8 s stabilisation, 6 s cooldown. `runway generate` sends 2.5 x one worker's
capacity for 25 s: the autoscaler must add workers until the lag falls, remove them one at a
time once the load stops, every stop a clean exit; and across those rebalances the join stays
exact (the speed view equals the independent oracle, Parquet holds each joined pair once).
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings, worker_environment
from tests.integration import dataset
from tests.integration.harness import ROOT, RUNWAY, group_caught_up, wait_for
from tests.integration.test_join import check_everything, own_redis_prefix, worker_settings
from tools.traffic import TrafficSpec, Truth, generate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CAP = 600.0  # events/s one worker may take
RATE = 1500.0  # events/s sent: 2.5 workers' worth
SECONDS = 25.0
UP_S, DOWN_S = 5.0, 2.0


def free_ports(count: int) -> int:
    """A base port with `count` free ports from it (worker slots use web_port + i)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 40_000)
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no free port range")


def traffic(start_ms: int, run_id: str) -> TrafficSpec:
    """What `runway generate` builds from the options in `generate_args` (kept in step)."""
    return TrafficSpec(
        models=8,
        rate=RATE,
        duration_s=SECONDS,
        batch_size=100,
        linger_ms=1000,
        start_ms=start_ms,
        label_delay="uniform",
        label_delay_ms=2000.0,
        unlabeled_share=0.0,  # every prediction is labelled: nothing waits for expiry
        early_share=0.05,
        duplicate_share=0.01,
        malformed_share=0.001,
        drain=True,
        run_id=run_id,
    )


def generate_args(spec: TrafficSpec, seed: int) -> list[str]:
    return [
        "generate",
        f"--models={spec.models}",
        f"--rate={spec.rate}",
        f"--duration={spec.duration_s}",
        f"--batch-size={spec.batch_size}",
        f"--linger-ms={spec.linger_ms}",
        f"--start-ms={spec.start_ms}",
        f"--label-delay={spec.label_delay}",
        f"--label-delay-ms={spec.label_delay_ms}",
        f"--unlabeled-share={spec.unlabeled_share}",
        f"--early-share={spec.early_share}",
        f"--duplicate-share={spec.duplicate_share}",
        f"--malformed-share={spec.malformed_share}",
        f"--run-id={spec.run_id}",
        f"--seed={seed}",
        "--drain",
        "--no-progress",
    ]


def events(log: Path) -> list[dict[str, Any]]:
    """The autoscaler's decisions, starts and stops; a `sample_failed` line (a Kafka hiccup the
    autoscaler rides out, e.g. a new group's coordinator not yet known) is not one of them."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event["event"] != "sample_failed":
                found.append(event)
    return found


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def metric(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as response:
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_autoscaler_follows_lag_and_the_join_stays_exact(
    settings: Settings, tmp_path: Path
) -> None:
    settings = own_redis_prefix(settings)
    web_port = free_ports(4)
    metrics_port = free_ports(1)
    base = worker_settings(settings, tmp_path, "autoscaled", max_events_per_s=CAP).model_copy(
        update={
            "web_port": web_port,
            "autoscale_min_workers": 1,
            "autoscale_max_workers": 4,
            "autoscale_scale_up_lag_s": UP_S,
            "autoscale_scale_down_lag_s": DOWN_S,
            "autoscale_stabilization_s": 8.0,
            "autoscale_cooldown_s": 6.0,
            "autoscale_interval_s": 1.0,
            "autoscale_rate_window_s": 5.0,
            "autoscale_metrics_port": metrics_port,
            "autoscale_dir": tmp_path / "autoscale",
        }
    )
    log = tmp_path / "autoscale.log"
    with log.open("wb") as out, (tmp_path / "autoscale.err").open("wb") as err:
        scaler = subprocess.Popen(
            [RUNWAY, "autoscale"], env=worker_environment(base), cwd=ROOT, stdout=out, stderr=err
        )
    seed, start_ms = 17, int(time.time() * 1000)
    spec = traffic(start_ms, f"as{start_ms}")
    try:

        def first_worker_up() -> bool:
            if scaler.poll() is not None:  # fail now, with the reason, not after the deadline
                err = (tmp_path / "autoscale.err").read_text(errors="replace")[-3000:]
                raise AssertionError(f"runway autoscale exited {scaler.returncode}:\n{err}")
            return healthy(web_port)

        await wait_for(first_worker_up, 90, "the first worker's /health")
        assert (
            await wait_for(
                lambda: metric(metrics_port, "runway_autoscale_workers"), 30, "autoscaler metrics"
            )
            == 1.0
        )
        sender = await asyncio.create_subprocess_exec(
            RUNWAY,
            *generate_args(spec, seed),
            env=worker_environment(settings),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(sender.communicate(), SECONDS + 60)
        assert sender.returncode == 0, output.decode()
        sent_at = max(e["at_ms"] for e in events(log))

        def scaled_back() -> bool:
            seen = events(log)
            downs = [e for e in seen if e.get("action") == "down"]
            return bool(downs) and seen[-1]["workers"] == 1 and seen[-1]["at_ms"] > sent_at

        await wait_for(scaled_back, 120, "the autoscaler to scale back to one worker")
        inputs = [settings.topic(t) for t in ("predictions", "outcomes", "joined")]
        await wait_for(lambda: group_caught_up(settings, inputs), 60, "the group to catch up")
        truth = Truth()
        records = list(generate(spec, random.Random(seed), truth))
        data = dataset.DataSet(records, [], truth, {}, {})
        await check_everything(settings, data, tmp_path)  # the oracle: 0 lost, 0 duplicated
        print(
            f"exact: {len(truth.predictions)} predictions, {len(truth.outcomes)} outcomes "
            f"({truth.duplicates} duplicates, {sum(truth.malformed.values())} malformed) in "
            f"{len(records)} records; speed view = oracle, Parquet = the unique joined pairs"
        )
    except BaseException:
        print(log.read_text(errors="replace")[-6000:])
        raise
    finally:
        if scaler.poll() is None:
            scaler.send_signal(signal.SIGTERM)
            try:
                scaler.wait(timeout=90)
            except subprocess.TimeoutExpired:
                scaler.kill()
                scaler.wait(timeout=10)

    assert scaler.returncode == 0, (tmp_path / "autoscale.err").read_text()[-3000:]
    seen = events(log)
    decisions = [e for e in seen if e["event"] == "decision"]
    ups = [e for e in decisions if e["action"] == "up"]
    downs = [e for e in decisions if e["action"] == "down"]
    stops = [e for e in seen if e["event"] == "stopped"]
    peak = max(e["workers"] for e in seen)
    print(f"timeline: {len(ups)} up, {len(downs)} down, peak {peak} workers")
    for e in seen:
        if e["event"] != "decision" or e["action"] != "hold":
            print(json.dumps(e))
    # up: only on lag over the bound, to more than one worker
    assert ups and all(e["lag_s"] > UP_S for e in ups)
    assert peak > 1
    # the lag fell while the added workers ran: the first calm sample after the peak lag
    peak_at = max(decisions, key=lambda e: e["lag_s"])["at_ms"]
    calm = next(e for e in decisions if e["at_ms"] > peak_at and e["lag_s"] < DOWN_S)
    assert calm["workers"] > 1
    # down: one worker at a time, only after calm, back to the minimum; every stop clean
    assert all(e["target"] == e["workers"] - 1 and e["lag_s"] < DOWN_S for e in downs)
    assert [e["workers"] for e in downs][-1] == 2
    assert len(stops) == peak  # the scale-downs, then the last worker at shutdown
    assert {e["how"] for e in stops} == {"exit 0"}
    assert not [e for e in seen if e["event"] == "restarted"]
