"""Before a worker starts: are these Kafka credentials and this TLS trust accepted?

A refused login is not a transient error: Faust's clients would log one error per broker and a
traceback, and the other clients retry for good. The worker asks once, before anything else
starts, and on a refusal logs one line naming the settings to fix and exits with EX_CONFIG.
A broker that cannot be reached is not a refusal: that is left to the clients' own retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl

import faust
from aiokafka.conn import create_conn
from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError

from config.connections import describe_kafka, kafka_security
from config.settings import Settings

log = logging.getLogger(__name__)

EXIT_CONFIG = 78  # EX_CONFIG: fixing the settings, not restarting, is the cure
TIMEOUT_S = 10.0


def _hosts(bootstrap: str) -> list[tuple[str, int]]:
    hosts = []
    for server in (s.strip() for s in bootstrap.split(",") if s.strip()):
        host, colon, port = server.rpartition(":")
        hosts.append((host.strip("[]"), int(port)) if colon else (server, 9092))
    return hosts


async def kafka_refusal(settings: Settings) -> str | None:
    """Why the brokers refuse this client's TLS or SASL login, in one sentence; None when the
    first broker that answers accepts it (or none answers, or there is nothing to refuse)."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    security = kafka_security(settings)
    for host, port in _hosts(settings.kafka_bootstrap):
        try:
            conn = await asyncio.wait_for(
                create_conn(host, port, request_timeout_ms=int(TIMEOUT_S * 1000), **security),
                TIMEOUT_S,
            )
        except (SaslAuthenticationFailed, UnsupportedSaslMechanismError) as exc:
            return (
                f"{describe_kafka(settings)} refused the login ({exc}): check "
                "RUNWAY_KAFKA_SASL_USERNAME, RUNWAY_KAFKA_SASL_PASSWORD and "
                "RUNWAY_KAFKA_SASL_MECHANISM."
            )
        except ssl.SSLError as exc:  # before OSError, its base class
            return (
                f"{describe_kafka(settings)}: TLS failed at {host}:{port} ({exc.reason or exc}): "
                "check RUNWAY_KAFKA_SSL_CAFILE and that the servers are its TLS listeners."
            )
        except Exception:  # unreachable, timed out, any other error: not a refusal
            continue
        with contextlib.suppress(Exception):
            conn.close()
        return None
    return None


class PreflightWorker(faust.Worker):
    """Faust's worker, asking `kafka_refusal` before any of the app's services start."""

    settings: Settings

    async def on_first_start(self) -> None:
        refusal = await kafka_refusal(self.settings)
        if refusal is not None:
            log.critical("worker cannot start: %s", refusal)
            logging.shutdown()
            os._exit(EXIT_CONFIG)  # nothing has started: nothing to stop or flush
        await super().on_first_start()


def worker_class(settings: Settings) -> type[PreflightWorker]:
    """The app's `Worker` setting: a class of its own that knows the settings."""
    return type("Worker", (PreflightWorker,), {"settings": settings})
