"""The one place that turns settings into client connection options: Kafka, Redis, S3.

Every Kafka client of the project (Faust's, through `streams.app`, and each aiokafka producer,
consumer and admin client) takes `kafka_options(settings)`, so a deployment that needs TLS or
SASL configures it once and no client is left connecting in plaintext. The same holds for Redis
(`redis_options`) and S3 (`s3_keys`). Secrets stay `SecretStr` in the settings and are unwrapped
only here, into the keyword arguments handed to a client; nothing here logs.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from config.settings import Settings


def tls_context(cafile: Path | None) -> ssl.SSLContext:
    """A client context that verifies the server's certificate and hostname.

    Against `cafile` when given (a private CA, the local stack's), else the system's CAs.
    """
    return ssl.create_default_context(cafile=str(cafile.expanduser()) if cafile else None)


def kafka_security(settings: Settings) -> dict[str, Any]:
    """aiokafka's security keyword arguments (the same for producers, consumers, admins)."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = tls_context(settings.kafka_ssl_cafile)
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=password.get_secret_value() if password else None,
        )
    return options


def kafka_options(settings: Settings) -> dict[str, Any]:
    """Bootstrap servers plus security: `AIOKafkaConsumer(**kafka_options(s), group_id=...)`."""
    return {"bootstrap_servers": settings.kafka_bootstrap, **kafka_security(settings)}


def describe_kafka(settings: Settings) -> str:
    """How the clients connect, for a log line or an error: never a secret."""
    protocol = settings.kafka_security_protocol
    how: str = protocol
    if protocol.startswith("SASL_"):
        how += f" {settings.kafka_sasl_mechanism} as {settings.kafka_sasl_username!r}"
    return f"Kafka at {settings.kafka_bootstrap} ({how})"


def redis_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `Redis.from_url(settings.redis_url, **redis_options(settings))`.

    TLS follows the URL's scheme (`rediss://`); the ACL user and password come from their own
    settings so the password is never part of a URL that might be printed.
    """
    options: dict[str, Any] = {}
    if settings.redis_username is not None:
        options["username"] = settings.redis_username
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if urlparse(settings.redis_url).scheme == "rediss":
        options["ssl_cert_reqs"] = "required"
        options["ssl_check_hostname"] = True
        if settings.redis_ssl_cafile is not None:
            options["ssl_ca_certs"] = str(settings.redis_ssl_cafile.expanduser())
    return options


def s3_keys(settings: Settings) -> tuple[str | None, str | None]:
    """(access key, secret key) when both are set; (None, None) leaves the choice to the AWS
    default credential chain (environment, profile, container or instance role)."""
    secret = settings.aws_secret_access_key
    if settings.aws_access_key_id is None or secret is None:
        return None, None
    return settings.aws_access_key_id, secret.get_secret_value()
