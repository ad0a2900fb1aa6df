"""A streaming standby of the stack's PostgreSQL: the registry's hot copy, on its own port.

Made once with `pg_basebackup -R` from the primary (which writes `standby.signal` and the
`primary_conninfo` that streams WAL from then on), as the primary's `replicator` role, then run
like the primary (same binaries, same user, same flags) from its own data directory
(`<stack dir>/data/postgres-standby`) on `RUNWAY_REGISTRY_STANDBY_PORT`. Promotion is SQL
(`registry.standby.promote`); after it the directory holds a primary, and starting it again
starts that primary. `purge` removes the directory, so the next `up` makes a fresh standby.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

from config.settings import Settings
from stack import api, processes, render
from stack.errors import StackError
from stack.plan import HOST, Layout
from stack.postgres import REPLICATION_ROLE, PostgresService
from stack.service import Service

NAME = "postgres-standby"


class PostgresStandby(Service):
    name = NAME
    stop_signal = PostgresService.stop_signal
    stop_grace_s = PostgresService.stop_grace_s

    def __init__(self, settings: Settings) -> None:
        self.primary = PostgresService(settings)
        self.port = settings.registry_standby_port
        self.address = f"{HOST}:{self.port}"
        self.ports = (self.port,)
        self.user = self.primary.user
        self.data = Layout.of(settings).data_dir(NAME)

    def check_prerequisites(self) -> None:
        self.primary.check_prerequisites()

    async def prepare(self, layout: Layout) -> list[str]:
        if not (self.data / "PG_VERSION").exists():
            await asyncio.to_thread(self._base_backup)
        return render.postgres_command(self.primary._bin("postgres"), self.data, self.port)

    def _base_backup(self) -> None:
        if not processes.port_answers(self.primary.port):
            raise StackError(
                f"the primary PostgreSQL on {self.primary.address} is not running: "
                "start it with `runway stack up` before making its standby."
            )
        self.primary.ensure_replication_role()
        shutil.rmtree(self.data, ignore_errors=True)
        self.data.mkdir(parents=True, mode=0o700)  # postgres refuses a wider one
        self.data.chmod(0o700)  # whatever the umask
        if self.user is not None:
            shutil.chown(self.data, self.user, self.user)
        result = subprocess.run(
            [self.primary._bin("pg_basebackup"), "-h", HOST, "-p", str(self.primary.port),
             "-U", REPLICATION_ROLE, "-D", str(self.data), "-R", "-X", "stream",
             "--checkpoint=fast", "--no-sync"],
            capture_output=True,
            text=True,
            check=False,
            user=self.user,
            group=self.user,
            extra_groups=[] if self.user else None,
            cwd="/",
            timeout=300,
        )  # fmt: skip
        if result.returncode != 0:
            shutil.rmtree(self.data, ignore_errors=True)
            raise StackError(
                f"pg_basebackup from {self.primary.address} failed.",
                (result.stdout + result.stderr)[-3000:],
            )

    async def ready(self) -> bool:
        if not processes.port_answers(self.port):
            return False
        result = await asyncio.to_thread(self.primary._psql, "SELECT 1", "postgres", port=self.port)
        return result.returncode == 0

    def log_files(self, layout: Layout) -> list[Path]:
        return [layout.out_file(self.name)]


async def up(settings: Settings) -> PostgresStandby:
    """Make the standby if it does not exist, start it, wait until it answers (idempotent)."""
    standby = PostgresStandby(settings)
    await api.start_services(settings, [standby])
    return standby


def down(settings: Settings, purge: bool = False) -> int | None:
    """Stop the standby (its pid, or None); `purge` deletes its data directory too."""
    standby = PostgresStandby(settings)
    pid = processes.stop(
        Layout.of(settings).pid_file(NAME), standby.stop_signal, standby.stop_grace_s
    )
    if purge:
        shutil.rmtree(standby.data, ignore_errors=True)
    return pid


def running(settings: Settings) -> bool:
    return processes.running(Layout.of(settings).pid_file(NAME)) is not None
