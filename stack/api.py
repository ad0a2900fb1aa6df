"""The local stack's Python API: `up`, `down`, `status`, and stopping/starting one broker.

`up(settings)` starts the single-broker Kafka, Redis, S3 (moto) and PostgreSQL;
`up(settings, brokers=3)` starts the three-broker Kafka cluster and the same shared services;
`up(settings, brokers=(1, 3))` both. Everything lives under `settings.stack_dir`; `down` stops
every process that has a pid file there.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import signal
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from config.settings import Settings
from stack import processes
from stack.clock import Deadline, wait_until
from stack.errors import PrerequisiteMissing, StackError
from stack.kafka import KafkaNodeService, node_services
from stack.plan import CLUSTER, Layout, cluster_for, three_brokers

__all__ = ["Layout", "ServiceStatus", "down", "start_broker", "status", "stop_broker", "up"]
from stack.postgres import PostgresService
from stack.redis import RedisService
from stack.s3 import S3Service
from stack.service import Service


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    answering: bool
    pid: int | None
    address: str


def services(settings: Settings, brokers: int | Sequence[int] = 1) -> list[Service]:
    """The services `up` starts for these broker counts: Kafka node(s) first, then shared ones."""
    counts = [brokers] if isinstance(brokers, int) else list(brokers)
    chosen: list[Service] = []
    for count in counts:
        chosen += node_services(settings, cluster_for(settings, count))
    chosen += [RedisService(settings), S3Service(settings)]
    if settings.stack_postgres:
        chosen.append(PostgresService(settings))
    return chosen


def _log_hint(service: Service, layout: Layout) -> tuple[str, str]:
    files = service.log_files(layout)
    written = [(path, text) for path in files if (text := processes.tail(path))]
    log = written[-1][0] if written else files[0]
    return str(log), "\n".join(f"[{path}]\n{text}" for path, text in written)


async def _start(service: Service, layout: Layout) -> None:
    command = await service.prepare(layout)
    processes.spawn(
        command,
        pid_file=layout.pid_file(service.name),
        out_file=layout.out_file(service.name),
        cwd=layout.root,
        user=service.user,
    )


async def _wait_ready(service: Service, layout: Layout, timeout_s: float) -> None:
    pid_file = layout.pid_file(service.name)
    state = {"alive": True, "ready": False}

    async def answered_or_died() -> bool:
        state["alive"] = processes.running(pid_file) is not None
        state["ready"] = state["alive"] and await service.ready()
        return state["ready"] or not state["alive"]

    await wait_until(answered_or_died, Deadline(timeout_s), interval=0.25)
    if state["ready"]:
        return
    log, tail = _log_hint(service, layout)
    if not state["alive"]:
        raise StackError(
            f"{service.name} exited before answering on {service.address}; see {log}.", tail
        )
    raise StackError(
        f"{service.name} did not answer on {service.address} within {timeout_s:.0f}s; see {log}.",
        tail,
    )


@contextlib.asynccontextmanager
async def _exclusive(layout: Layout, timeout_s: float) -> AsyncIterator[None]:
    """One `up` at a time per stack dir (two test sessions may start the same stack)."""
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    with (layout.run_dir / "up.lock").open("w") as lock:

        async def acquired() -> bool:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        if not await wait_until(acquired, Deadline(timeout_s), interval=0.2):
            raise StackError(
                f"another `runway stack up` on {layout.root} has not finished in {timeout_s:.0f}s."
            )
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


async def start_services(settings: Settings, chosen: Sequence[Service]) -> None:
    """Start those of `chosen` that are not running, wait until all answer (idempotent)."""
    layout = Layout.of(settings)
    async with _exclusive(layout, settings.stack_up_timeout_s * 2):
        await _start_services(settings, layout, chosen)


async def _start_services(settings: Settings, layout: Layout, chosen: Sequence[Service]) -> None:
    for directory in (layout.run_dir, layout.logs_dir, layout.conf_dir):
        directory.mkdir(parents=True, exist_ok=True)
    for service in chosen:
        service.check_prerequisites()
    to_start = [s for s in chosen if processes.running(layout.pid_file(s.name)) is None]
    for service in to_start:
        for port in service.ports:
            if not processes.port_free(port):
                raise PrerequisiteMissing(
                    f"port {port} (for {service.name}) is taken by a process that is not this "
                    f"stack's (stack dir {layout.root}): stop it, or move the stack with the "
                    "RUNWAY_STACK_*_PORT settings."
                )
    await asyncio.gather(*(_start(s, layout) for s in to_start))
    timeout = settings.stack_up_timeout_s
    await asyncio.gather(*(_wait_ready(s, layout, timeout) for s in chosen))
    for service in chosen:
        await service.after_ready()


async def up(settings: Settings, brokers: int | Sequence[int] = 1) -> list[ServiceStatus]:
    """Start the stack (idempotent) and wait until every service answers; its status after."""
    await start_services(settings, services(settings, brokers))
    return await status(settings)


def _stop_signal(name: str) -> tuple[signal.Signals, float]:
    if name.startswith(PostgresService.name):  # the registry's standby too (stack.standby)
        return PostgresService.stop_signal, PostgresService.stop_grace_s
    if name.startswith("kafka"):
        return KafkaNodeService.stop_signal, KafkaNodeService.stop_grace_s
    return signal.SIGTERM, 10.0


def stop_service(settings: Settings, name: str) -> int | None:
    """Stop one service by name (SIGTERM or its own signal, then SIGKILL); its pid or None."""
    sig, grace = _stop_signal(name)
    return processes.stop(Layout.of(settings).pid_file(name), sig, grace)


def stop_services(settings: Settings, names: Sequence[str]) -> list[tuple[str, int]]:
    """Stop these services at once (a KRaft quorum stopped one by one loses its majority and
    the last node hangs in controlled shutdown); (name, pid) of those that were running."""
    names = sorted(names)
    if not names:
        return []
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        pids = list(pool.map(lambda name: stop_service(settings, name), names))
    return [(name, pid) for name, pid in zip(names, pids, strict=True) if pid is not None]


def down(settings: Settings) -> list[tuple[str, int]]:
    """Stop every process with a pid file in the stack dir; (name, pid) of those stopped."""
    run_dir = Layout.of(settings).run_dir
    names = [path.stem for path in run_dir.glob("*.pid")] if run_dir.exists() else []
    return stop_services(settings, names)


async def status(settings: Settings) -> list[ServiceStatus]:
    """Every known service of the stack dir: running or not, its pid and address."""
    layout = Layout.of(settings)
    known: dict[str, Service] = {s.name: s for s in services(settings, (1, 3))}
    names = list(known)
    if layout.run_dir.exists():
        names += sorted(p.stem for p in layout.run_dir.glob("*.pid") if p.stem not in known)
    result = []
    for name in names:
        record = processes.running(layout.pid_file(name))
        service = known.get(name)
        answering = bool(record and service and await service.ready())
        address = service.address if service else "?"
        pid = record.pid if record else None
        result.append(ServiceStatus(name, record is not None, answering, pid, address))
    return result


def broker_service(settings: Settings, node_id: int) -> KafkaNodeService:
    cluster = three_brokers(settings)
    return KafkaNodeService(settings, cluster, cluster.node(node_id))


def stop_broker(settings: Settings, node_id: int) -> int | None:
    """Stop one broker of the three-broker cluster (controlled shutdown); its pid or None."""
    return stop_service(settings, f"{CLUSTER}-{node_id}")


async def start_broker(settings: Settings, node_id: int) -> None:
    """Start one broker of the three-broker cluster again and wait until it answers."""
    await start_services(settings, [broker_service(settings, node_id)])
