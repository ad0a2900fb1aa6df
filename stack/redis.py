"""Debian's redis-server with its own configuration under the stack directory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis as redis_client

from config.settings import Settings
from stack import render
from stack.plan import HOST, Layout
from stack.processes import port_answers, require_program
from stack.service import Service


class RedisService(Service):
    name = "redis"
    stop_grace_s = 10.0

    def __init__(self, settings: Settings) -> None:
        self.port = settings.stack_redis_port
        self.address = f"{HOST}:{self.port}"
        self.ports = (self.port,)

    def check_prerequisites(self) -> None:
        self.server = require_program(
            "redis-server", "install it with ./stack/bootstrap.sh (apt-get install redis-server)"
        )

    async def prepare(self, layout: Layout) -> list[str]:
        data = layout.data_dir(self.name)
        data.mkdir(parents=True, exist_ok=True)
        layout.conf_dir.mkdir(parents=True, exist_ok=True)
        layout.logs_dir.mkdir(parents=True, exist_ok=True)
        conf = layout.conf_file(self.name, ".conf")
        conf.write_text(render.redis_conf(self.port, data, layout.log_file(self.name)))
        return [self.server, str(conf)]

    async def ready(self) -> bool:
        if not port_answers(self.port):
            return False
        return await asyncio.to_thread(self._ping)

    def _ping(self) -> bool:
        client = redis_client.Redis(host=HOST, port=self.port, socket_timeout=2)
        try:
            return bool(client.ping())
        except redis_client.RedisError:
            return False
        finally:
            client.close()

    def log_files(self, layout: Layout) -> list[Path]:
        return [layout.log_file(self.name), layout.out_file(self.name)]
