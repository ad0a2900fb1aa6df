"""PostgreSQL (for the registry): Debian's binaries, a cluster of our own under the stack dir.

initdb and postgres refuse to run as root, so as root the data directory is chowned to the
`postgres` user and both run as it. A system cluster on 5432, if any, is left alone.
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
from pathlib import Path

from config.settings import Settings
from stack import render
from stack.errors import PrerequisiteMissing, StackError
from stack.plan import HOST, Layout, postgres_target
from stack.processes import port_answers
from stack.service import Service

SYSTEM_USER = "postgres"
# streams WAL to the registry's standby (`stack.standby`); initdb's pg_hba.conf lets any role
# replicate from 127.0.0.1 under the stack's trust authentication
REPLICATION_ROLE = "replicator"


def find_bindir() -> Path | None:
    """The newest Debian PostgreSQL bin directory, else wherever `initdb` is on PATH."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    if candidates:
        return max(candidates, key=lambda p: version(p))
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def traversable_by(directory: Path, user: str) -> bool:
    """True if `user` may enter every directory from / down to `directory`."""
    entry = pwd.getpwnam(user)
    groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    path = Path("/")
    for part in directory.resolve().parts[1:]:
        path = path / part
        if not path.exists():
            break
        info = path.stat()
        if info.st_uid == entry.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return False
    return True


class PostgresService(Service):
    name = "postgres"
    stop_grace_s = 15.0
    stop_signal = signal.SIGINT  # "fast" shutdown: does not wait for clients to disconnect

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.stack_postgres_port
        self.address = f"{HOST}:{self.port}"
        self.ports = (self.port,)
        self.target = postgres_target(settings)
        self.user = SYSTEM_USER if os.geteuid() == 0 else None
        self.bindir = find_bindir()

    def check_prerequisites(self) -> None:
        if self.bindir is None:
            raise PrerequisiteMissing(
                "PostgreSQL is not installed: run ./stack/bootstrap.sh (apt-get install "
                "postgresql), or set RUNWAY_STACK_POSTGRES=false."
            )
        if self.user is not None:
            try:
                pwd.getpwnam(self.user)
            except KeyError:
                raise PrerequisiteMissing(
                    "PostgreSQL must run as the 'postgres' user, which does not exist: "
                    "reinstall Debian's postgresql package."
                ) from None

    def _bin(self, program: str) -> str:
        assert self.bindir is not None
        return str(self.bindir / program)

    async def prepare(self, layout: Layout) -> list[str]:
        data = layout.data_dir(self.name)
        if self.user is not None and not traversable_by(data.parent, self.user):
            raise PrerequisiteMissing(
                f"PostgreSQL runs as the '{self.user}' user, which cannot reach {data.parent}: "
                "move RUNWAY_STACK_DIR under a directory it can traverse, or set "
                "RUNWAY_STACK_POSTGRES=false."
            )
        if not (data / "PG_VERSION").exists():
            await asyncio.to_thread(self._initdb, layout, data)
        return render.postgres_command(self._bin("postgres"), data, self.port)

    def _initdb(self, layout: Layout, data: Path) -> None:
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        if self.user is not None:
            shutil.chown(data, self.user, self.user)
        result = subprocess.run(
            [self._bin("initdb"), "-D", str(data), "-U", self.target.user, "--auth=trust",
             "-E", "UTF8", "--no-sync", "--no-instructions"],
            capture_output=True,
            text=True,
            check=False,
            user=self.user,
            group=self.user,
            extra_groups=[] if self.user else None,
            cwd="/",
        )  # fmt: skip
        if result.returncode != 0:
            raise StackError(
                f"initdb failed for PostgreSQL's data directory {data}.",
                (result.stdout + result.stderr)[-3000:],
            )

    def _psql(
        self, sql: str, database: str, port: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`port`: another cluster of these binaries (the standby), else this one."""
        return subprocess.run(
            [self._bin("psql"), "-h", HOST, "-p", str(port or self.port), "-U", self.target.user,
             "-d", database, "-tAc", sql],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )  # fmt: skip

    async def ready(self) -> bool:
        if not port_answers(self.port):
            return False
        result = await asyncio.to_thread(self._psql, "SELECT 1", "postgres")
        return result.returncode == 0

    async def after_ready(self) -> None:
        await asyncio.to_thread(self._create_database)
        await asyncio.to_thread(self.ensure_replication_role)

    def ensure_replication_role(self) -> None:
        found = self._psql(
            f"SELECT 1 FROM pg_roles WHERE rolname = '{REPLICATION_ROLE}'", "postgres"
        )
        if found.stdout.strip() == "1":
            return
        made = self._psql(f"CREATE ROLE {REPLICATION_ROLE} WITH REPLICATION LOGIN", "postgres")
        if made.returncode != 0 and "already exists" not in made.stderr:
            raise StackError("PostgreSQL could not create the replication role.", made.stderr)

    def _create_database(self) -> None:
        name = self.target.database
        found = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'", "postgres")
        if found.stdout.strip() == "1":
            return
        created = self._psql(f'CREATE DATABASE "{name}"', "postgres")
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise StackError(f"PostgreSQL could not create the database {name!r}.", created.stderr)
