"""Credentials and TLS against real servers: the three-broker cluster's SASL_SSL listeners
(SCRAM-SHA-512 over TLS, `runway stack up --brokers 3`) and a Redis of this test's own that
speaks only TLS and knows only one ACL user.

A `runway worker` configured for both joins a crafted data set exactly (the join tests' oracle)
and shows no secret in its log or its /health; the same worker with a wrong password, or
trusting another CA, stops at once with one line; Redis refuses a wrong password, the `default`
user, a plaintext connection and a client that does not trust its CA.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from config.connections import redis_options
from config.settings import Settings
from stack.plan import Layout, local_s3_credentials, sasl_client_settings
from stack.processes import free_port, require_program
from stack.tls import TlsFiles, ensure_tls
from stack.topics import ensure_topics
from streams.preflight import EXIT_CONFIG
from tests.integration import dataset
from tests.integration.harness import Worker, send_records, wait_for
from tests.integration.test_join import check_everything, run_until_done, worker_settings

pytestmark = pytest.mark.integration

REDIS_USER = "runway-worker"


@dataclass(frozen=True)
class TlsRedis:
    port: int
    password: str
    tls: TlsFiles

    def settings(self, **changes: object) -> Settings:
        """Client settings for this server: TLS verified against its CA, the ACL user."""
        values: dict[str, object] = {
            "redis_url": f"rediss://127.0.0.1:{self.port}/0",
            "redis_username": REDIS_USER,
            "redis_password": self.password,
            "redis_ssl_cafile": self.tls.ca,
            **changes,
        }
        return Settings(**values)


def tls_redis_conf(port: int, tls: TlsFiles, password: str, directory: Path) -> str:
    """TLS only (`port 0`), no client certificates; `default` disabled, one ACL user."""
    return f"""bind 127.0.0.1
port 0
tls-port {port}
tls-cert-file {tls.cert}
tls-key-file {tls.key}
tls-ca-cert-file {tls.ca}
tls-auth-clients no
dir {directory}
logfile {directory / "redis.log"}
save ""
appendonly no
user default off
user {REDIS_USER} on >{password} ~* &* +@all
"""


def ping(settings: Settings) -> bool:
    client = redis.Redis.from_url(
        settings.redis_url, **redis_options(settings), socket_timeout=2, socket_connect_timeout=2
    )
    try:
        return bool(client.ping())
    finally:
        client.close()


@pytest.fixture
async def tls_redis(tmp_path: Path) -> AsyncIterator[TlsRedis]:
    server = require_program("redis-server", "apt-get install redis-server")
    directory = tmp_path / "redis"
    directory.mkdir()
    tls = ensure_tls(tmp_path / "redis-tls")
    own = TlsRedis(free_port(), secrets.token_urlsafe(16), tls)
    conf = directory / "redis.conf"
    conf.write_text(tls_redis_conf(own.port, tls, own.password, directory))
    process = subprocess.Popen([server, str(conf)], stdin=subprocess.DEVNULL)
    try:

        def answers() -> bool:
            assert process.poll() is None, (directory / "redis.log").read_text()
            try:
                return ping(own.settings())
            except redis.RedisError:
                return False

        await wait_for(answers, 20, "the TLS Redis")
        yield own
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_redis_over_tls_with_an_acl_user(tls_redis: TlsRedis, tmp_path: Path) -> None:
    settings = tls_redis.settings()
    client = redis.Redis.from_url(settings.redis_url, **redis_options(settings))
    try:
        assert client.acl_whoami() == REDIS_USER
        client.hset("probe", mapping={"count": 3})
        assert client.hgetall("probe") == {b"count": b"3"}
        assert client.connection_pool.connection_class.__name__ == "SSLConnection"
    finally:
        client.close()

    with pytest.raises(redis.AuthenticationError):
        ping(tls_redis.settings(redis_password="wrong"))
    with pytest.raises(redis.AuthenticationError):  # the default user is disabled
        ping(tls_redis.settings(redis_username=None, redis_password=None))
    with pytest.raises(redis.ConnectionError):  # plaintext to the TLS port
        ping(Settings(redis_url=f"redis://127.0.0.1:{tls_redis.port}/0", redis_password="x"))
    other_ca = ensure_tls(tmp_path / "other-ca").ca
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        ping(tls_redis.settings(redis_ssl_cafile=other_ca))


def secured(cluster: Any, tls_redis: TlsRedis, **changes: object) -> Settings:
    """Kafka through the cluster's SASL_SSL listeners, Redis through TLS with the ACL user."""
    tag = uuid.uuid4().hex[:10]
    base = Settings(
        profile="production",
        topic_prefix=f"sasl-{tag}-",
        app_id=f"sasl-{tag}",
        redis_key_prefix=f"sasl-{tag}",
        partitions=4,
        **local_s3_credentials(),
    )
    redis_side = tls_redis.settings()
    return base.model_copy(
        update={
            **sasl_client_settings(Layout.of(cluster.settings), cluster.kafka),
            "redis_url": redis_side.redis_url,
            "redis_username": redis_side.redis_username,
            "redis_password": redis_side.redis_password,
            "redis_ssl_cafile": redis_side.redis_ssl_cafile,
            **changes,
        }
    )


async def test_worker_joins_over_sasl_ssl_and_tls_redis(
    cluster: Any, tls_redis: TlsRedis, tmp_path: Path
) -> None:
    settings = secured(cluster, tls_redis)
    await ensure_topics(settings)  # the admin client over SASL_SSL
    data = dataset.build(events=3_000, seed=23, models=4)
    await send_records(settings, data.phase1)  # the product's producer over SASL_SSL
    worker = Worker(worker_settings(settings, tmp_path, "a"), tmp_path / "worker.log").start()
    try:
        await wait_for(worker.healthy, 90, "the worker's /health")
        await run_until_done(settings, data)  # group offsets read over SASL_SSL
        await check_everything(settings, data, tmp_path)  # topics over SASL_SSL, Redis over TLS
        health = json.dumps(worker.health())
    except BaseException:
        print(worker.log_tail(80))
        raise
    finally:
        worker.stop()
    kafka_password = settings.kafka_sasl_password
    assert isinstance(kafka_password, SecretStr)
    log = worker.log_path.read_text(errors="replace")
    for secret in (kafka_password.get_secret_value(), tls_redis.password):
        assert secret not in log and secret not in health


async def refused_worker(settings: Settings, tmp_path: Path) -> tuple[int, list[str]]:
    """Start a worker that must not get in; its exit code and log lines once it stopped."""
    worker = Worker(worker_settings(settings, tmp_path, "w"), tmp_path / "worker.log").start()
    try:
        await wait_for(lambda: not worker.alive(), 60, "the worker to stop")
    finally:
        worker.stop()
    assert worker.process is not None
    return worker.process.returncode, worker.log_path.read_text(errors="replace").splitlines()


def the_one_error(lines: list[str]) -> str:
    errors = [line for line in lines if "cannot start" in line or "ERROR" in line]
    assert len(errors) == 1, "\n".join(lines[-40:])
    assert not any("Traceback" in line for line in lines)
    return errors[0]


async def test_a_wrong_password_stops_the_worker_with_one_line(
    cluster: Any, tls_redis: TlsRedis, tmp_path: Path
) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    settings = secured(cluster, tls_redis, kafka_sasl_password=SecretStr(wrong))
    code, lines = await refused_worker(settings, tmp_path)
    assert code == EXIT_CONFIG
    error = the_one_error(lines)
    assert "refused the login" in error and "SaslAuthenticationFailed" in error
    assert "RUNWAY_KAFKA_SASL_PASSWORD" in error
    assert f"as '{settings.kafka_sasl_username}'" in error
    assert not any(wrong in line for line in lines)


async def test_an_untrusted_broker_certificate_stops_the_worker_with_one_line(
    cluster: Any, tls_redis: TlsRedis, tmp_path: Path
) -> None:
    other_ca = ensure_tls(tmp_path / "other-ca").ca
    settings = secured(cluster, tls_redis, kafka_ssl_cafile=other_ca)
    code, lines = await refused_worker(settings, tmp_path)
    assert code == EXIT_CONFIG
    error = the_one_error(lines)
    assert "TLS failed at 127.0.0.1:" in error and "CERTIFICATE_VERIFY_FAILED" in error
    assert "RUNWAY_KAFKA_SSL_CAFILE" in error
