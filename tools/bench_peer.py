"""`runway bench --peer quix`: the same join in Quix Streams, measured the way the worker is.

Absolute figures drift on a shared machine by 10 % an hour, so a comparison with another
engine only means something inside one run. After the worker phases, the peer
(`tools/peer_quix.py`, see its docstring for the app and why it joins the way it does) runs as a
subprocess over the *same two backlogs* (same topics, its own consumer group, its own output
topic and changelog), and is measured exactly like the worker: its group's committed offsets
polled every `POLL_S`, events/s from the first committed offset until every input record is
committed, peak RSS from VmHWM, CPU seconds from /proc over the same interval. Its joined
records are counted from the output topic's end offsets once it has drained (Quix flushes its
producer before it commits, so they are final then).

quixstreams pins pydantic and pydantic-settings below the project's, so the peer gets its own
virtualenv, `.venv-peer/`, made on first use with the pinned version (`QUIXSTREAMS_VERSION`);
a failed install stops the bench before it preloads anything, with pip's own words.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from config.connections import kafka_options
from config.settings import Settings
from tools.bench import Backlog, drain, stop_process
from tools.peer_quix import KAFKA_CONFIG_ENV

ROOT = Path(__file__).resolve().parents[1]
PEERS = ("quix",)
QUIXSTREAMS_VERSION = "3.28.1"
PEER_VENV = ROOT / ".venv-peer"
PEER_SCRIPT = ROOT / "tools" / "peer_quix.py"
INSTALL_TIMEOUT_S = 900.0


class PeerSetupError(RuntimeError):
    """The peer's virtualenv could not be made; the message says what failed and how."""


def _run(command: list[str], what: str) -> None:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerSetupError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-3000:]
        raise PeerSetupError(
            f"{what} failed (exit {done.returncode}): {' '.join(command)}\n{output}"
        )


def peer_python(
    venv: Path = PEER_VENV,
    version: str = QUIXSTREAMS_VERSION,
    emit: Callable[[str], None] = print,
) -> Path:
    """The peer's interpreter: `venv` with quixstreams==`version`, made on first use.

    A marker file names the installed version, so a changed pin rebuilds the venv and a
    half-made one (no marker) is made again rather than trusted.
    """
    python = venv / "bin" / "python"
    marker = venv / f".installed-quixstreams-{version}"
    if marker.exists() and python.exists():
        return python
    emit(f"peer: creating {venv} with quixstreams=={version} (first use, about a minute) ...")
    _run([sys.executable, "-m", "venv", "--clear", str(venv)], f"creating the virtualenv {venv}")
    _run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         f"quixstreams=={version}"],
        f"installing quixstreams=={version} from PyPI into {venv}"
        " (needs network access to PyPI; the next run tries again)",
    )  # fmt: skip
    check = f"import quixstreams, sys; sys.exit(quixstreams.__version__ != {version!r})"
    _run([str(python), "-c", check], f"importing quixstreams=={version} in {venv}")
    marker.write_text(f"quixstreams=={version}\n")
    return python


def librdkafka_config(settings: Settings) -> dict[str, str]:
    """The project's Kafka connection settings in librdkafka's words (Quix's client)."""
    protocol = settings.kafka_security_protocol
    config = {"bootstrap.servers": settings.kafka_bootstrap, "security.protocol": protocol}
    if protocol in ("SSL", "SASL_SSL") and settings.kafka_ssl_cafile is not None:
        config["ssl.ca.location"] = str(settings.kafka_ssl_cafile.expanduser())
    if protocol.startswith("SASL_"):
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        if settings.kafka_sasl_username is not None:
            config["sasl.username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            config["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    return config


def peer_group(settings: Settings) -> str:
    return f"{settings.app_id}-peer-quix"


def peer_output(settings: Settings) -> str:
    return f"{settings.topic_prefix}peer-quix-joined"


def peer_command(python: Path, settings: Settings, state_dir: Path) -> list[str]:
    """The peer's command line over the phase's topics, with the worker's own settings."""
    return [
        str(python),
        str(PEER_SCRIPT),
        "--predictions", settings.topic("predictions"),
        "--outcomes", settings.topic("outcomes"),
        "--output", peer_output(settings),
        "--group", peer_group(settings),
        "--state-dir", str(state_dir),
        "--commit-interval", str(settings.checkpoint_interval_ms / 1000),
        "--partitions", str(settings.partitions),
        "--replication-factor", str(settings.effective_replication_factor),
        "--label-ttl-ms", str(settings.label_ttl_ms),
        "--early-outcome-ttl-ms", str(settings.early_outcome_ttl_ms),
        "--done-retention-ms", str(settings.done_retention_ms),
    ]  # fmt: skip


async def output_records(settings: Settings, topic: str) -> int:
    """Records in `topic` (the sum of its partitions' end offsets; it is never compacted)."""
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def measure_peer(
    python: Path, backlog: Backlog, state_dir: Path, log_path: Path, timeout_s: float
) -> dict[str, float]:
    """Run the peer over the backlog until its group has committed every input record."""
    settings = backlog.settings
    group = peer_group(settings)
    env = {**os.environ, KAFKA_CONFIG_ENV: json.dumps(librdkafka_config(settings))}
    log = log_path.open("ab")
    process = subprocess.Popen(
        peer_command(python, settings, state_dir),
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        run = await drain(process, backlog, group, log_path, timeout_s, "peer")
        run["joined_records"] = await output_records(settings, peer_output(settings))
        return run
    finally:
        stop_process(process)
        log.close()


async def delete_peer_topics(settings: Settings) -> None:
    """The peer's changelog topics (named after its group) and its output topic."""
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        group, output = peer_group(settings), peer_output(settings)
        mine = [t for t in await admin.list_topics() if group in t or t == output]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


def peer_figures(
    main: dict[str, float],
    single: dict[str, float],
    worker_events_per_s: float,
    worker_single_events_per_s: float,
    events: int,
) -> dict[str, Any]:
    """The JSON keys of the peer: its figures, and the worker's ÷ the peer's (same run)."""
    counted = events - main["events_at_first_commit"]
    return {
        "peer": "quix",
        "peer_version": f"quixstreams {QUIXSTREAMS_VERSION}",
        "peer_events_per_s": round(main["events_per_s"], 1),
        "peer_single_record_events_per_s": round(single["events_per_s"], 1),
        "peer_ratio": round(worker_events_per_s / main["events_per_s"], 4),
        "peer_single_ratio": round(worker_single_events_per_s / single["events_per_s"], 4),
        "peer_peak_rss_bytes": int(main["peak_rss_bytes"]),
        "peer_cpu_s": round(main["cpu_s"], 2),
        "peer_events_per_cpu_s": round(counted / max(main["cpu_s"], 1e-9), 1),
        "peer_s": round(main["elapsed_s"], 2),
        "peer_startup_s": round(main["startup_s"], 2),
        "peer_joined_records": int(main["joined_records"]),
        "peer_single_s": round(single["elapsed_s"], 2),
        "peer_single_peak_rss_bytes": int(single["peak_rss_bytes"]),
        "peer_single_cpu_s": round(single["cpu_s"], 2),
        "peer_single_joined_records": int(single["joined_records"]),
    }


async def peer_phases(
    python: Path,
    backlogs: tuple[Backlog, Backlog],
    workdir: Path,
    emit: Callable[[str], None],
    timeout_s: float = 1800.0,
) -> tuple[dict[str, float], dict[str, float]]:
    """The peer over the batch backlog, then over the single-event one; its topics deleted."""
    runs = []
    for backlog, tag in zip(backlogs, ("main", "single"), strict=True):
        emit(f"peer: Quix Streams {QUIXSTREAMS_VERSION} over the {tag} backlog ...")
        try:
            run = await measure_peer(
                python,
                backlog,
                workdir / f"peer-{tag}-state",
                workdir / f"peer-{tag}.log",
                timeout_s,
            )
        finally:
            await delete_peer_topics(backlog.settings)
        emit(f"  {run['events_per_s']:,.0f} events/s, {int(run['joined_records']):,} joined")
        runs.append(run)
    return runs[0], runs[1]
