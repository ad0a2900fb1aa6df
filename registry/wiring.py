"""The one place the registry's parts are built from the settings (no I/O until used)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import FastAPI
from redis import Redis

from config.connections import kafka_security, redis_options
from config.settings import Settings
from config.windows import parse_windows
from registry.api import KafkaCheck, create_api
from registry.cache import RegistryCache
from registry.service import Registry
from registry.store import Store
from registry.tokens import resolve_tokens
from stack.kafka import broker_ids


def build_registry(settings: Settings) -> Registry:
    timeout = settings.registry_db_timeout_s
    redis = Redis.from_url(
        settings.redis_url,
        **redis_options(settings),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    windows = [w.name for w in parse_windows(settings.windows)]  # the worker's own parse
    return Registry(
        Store.from_settings(settings), RegistryCache(redis, settings.redis_key_prefix), windows
    )


def kafka_check(settings: Settings) -> KafkaCheck:
    async def ok() -> bool:
        """Up when a bootstrap server answers with its brokers (stack's probe: errors quiet)."""
        try:
            found = await asyncio.wait_for(
                broker_ids(
                    settings.kafka_bootstrap, timeout_ms=2000, security=kafka_security(settings)
                ),
                settings.registry_db_timeout_s,
            )
        except TimeoutError:
            return False
        return bool(found)

    return ok


def build_api(settings: Settings, say: Callable[[str], None] = print) -> FastAPI:
    """Raises TokenError (before anything connects) when the tokens will not do."""
    tokens = resolve_tokens(settings.profile, settings.api_token, settings.api_tokens)
    if tokens.generated:  # the one place a token is ever shown
        say(
            "runway api: RUNWAY_API_TOKEN is unset (dev profile); for this run, writes take "
            f"the bearer token {tokens.generated}"
        )
    return create_api(settings, build_registry(settings), kafka_check(settings), tokens)
