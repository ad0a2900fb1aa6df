"""What the stack needs to know about one service; each module (kafka, redis, s3, postgres)
implements it, and `stack.api` starts, waits for and stops them all the same way."""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from pathlib import Path

from stack.plan import Layout


class Service(ABC):
    name: str
    address: str
    ports: tuple[int, ...]
    stop_signal: signal.Signals = signal.SIGTERM
    stop_grace_s: float = 15.0
    user: str | None = None  # run as this user (PostgreSQL refuses root)

    def check_prerequisites(self) -> None:  # noqa: B027 - most services need nothing
        """Raise PrerequisiteMissing with one sentence if something the service needs is absent."""

    @abstractmethod
    async def prepare(self, layout: Layout) -> list[str]:
        """Write configuration (and initialise data) under `layout`; return the command line."""

    @abstractmethod
    async def ready(self) -> bool:
        """True once the service answers a real request."""

    async def after_ready(self) -> None:  # noqa: B027 - most services need nothing
        """Create what the stack provides on top (the S3 bucket, the database)."""

    def log_files(self, layout: Layout) -> list[Path]:
        return [layout.out_file(self.name)]
