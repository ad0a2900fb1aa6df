"""Client options from settings (config/connections.py), Faust's credentials built from the same,
the checks on half-set credentials, and secrets kept out of every rendering of the settings."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import SecretStr, ValidationError

from config.connections import (
    describe_kafka,
    kafka_options,
    kafka_security,
    redis_options,
    s3_keys,
)
from config.settings import Settings, worker_environment
from stack.tls import ensure_tls
from streams.app import broker_credentials, create_app
from streams.preflight import _hosts, kafka_refusal

PASSWORD = "pa55-w0rd-that-must-never-show"


@pytest.fixture(scope="module")
def cafile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_tls(tmp_path_factory.mktemp("tls")).ca


def sasl(cafile: Path, **extra: Any) -> Settings:
    return Settings(
        kafka_bootstrap="b1:9096,b2:9096",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="runway",
        kafka_sasl_password=PASSWORD,
        kafka_ssl_cafile=cafile,
        **extra,
    )


def test_plaintext_by_default_with_only_the_servers() -> None:
    settings = Settings(kafka_bootstrap="k:9092")
    assert kafka_options(settings) == {
        "bootstrap_servers": "k:9092",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_ssl_carries_mechanism_user_password_and_a_verifying_context(cafile: Path) -> None:
    options = kafka_options(sasl(cafile))
    context = options.pop("ssl_context")
    assert options == {
        "bootstrap_servers": "b1:9096,b2:9096",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "runway",
        "sasl_plain_password": PASSWORD,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # the stack's CA is what it trusts
    subjects = [dict(item[0] for item in ca["subject"]) for ca in context.get_ca_certs()]
    assert {"commonName": "Runway local stack CA"} in subjects


def test_ssl_alone_has_a_context_and_no_sasl(cafile: Path) -> None:
    security = kafka_security(Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=cafile))
    assert set(security) == {"security_protocol", "ssl_context"}
    assert security["security_protocol"] == "SSL"


def test_sasl_plaintext_has_no_context() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="u",
        kafka_sasl_password="p",
    )
    assert kafka_security(settings) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
    }


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
def test_faust_gets_the_same_options_as_every_other_client(protocol: str, cafile: Path) -> None:
    """Faust turns its credentials back into aiokafka's arguments: they must be ours."""
    extra: dict[str, Any] = {"kafka_security_protocol": protocol}
    if protocol.startswith("SASL_"):
        extra.update(kafka_sasl_username="runway", kafka_sasl_password=PASSWORD)
    if protocol.endswith("SSL"):
        extra["kafka_ssl_cafile"] = cafile
    settings = Settings(**extra)
    ours = kafka_security(settings)
    faust_side = credentials_to_aiokafka_auth(broker_credentials(settings))
    if faust_side.get("ssl_context") is None:
        faust_side.pop("ssl_context", None)  # Faust names an absent context, we leave it out
    assert set(faust_side) == set(ours)
    for key, value in ours.items():
        if key == "ssl_context":
            assert isinstance(faust_side[key], ssl.SSLContext)
            assert faust_side[key].get_ca_certs() == value.get_ca_certs()
        else:
            assert faust_side[key] == value


def test_the_app_is_built_with_the_credentials_and_the_preflight_worker(cafile: Path) -> None:
    app = create_app(sasl(cafile))
    assert type(app.conf.broker_credentials).__name__ == "SASLCredentials"
    assert app.conf.broker_credentials.username == "runway"
    assert app.conf.Worker.__name__ == "Worker" and hasattr(app.conf.Worker, "on_first_start")


def test_description_names_the_way_in_never_the_secret(cafile: Path) -> None:
    text = describe_kafka(sasl(cafile))
    assert text == "Kafka at b1:9096,b2:9096 (SASL_SSL SCRAM-SHA-512 as 'runway')"
    assert describe_kafka(Settings(kafka_bootstrap="k:1")) == "Kafka at k:1 (PLAINTEXT)"


def test_secrets_stay_masked_in_every_rendering_of_the_settings(
    cafile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = sasl(
        cafile,
        redis_password="redis-" + PASSWORD,
        aws_access_key_id="AKIAEXAMPLE",
        aws_secret_access_key="aws-" + PASSWORD,
    )
    renderings = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
        str(settings.model_dump(mode="json")),
    ]
    for text in renderings:
        assert PASSWORD not in text
    assert isinstance(settings.kafka_sasl_password, SecretStr)
    # a child process needs the secret itself
    env = worker_environment(settings)
    assert env["RUNWAY_KAFKA_SASL_PASSWORD"] == PASSWORD
    assert env["RUNWAY_REDIS_PASSWORD"] == "redis-" + PASSWORD
    assert env["RUNWAY_AWS_SECRET_ACCESS_KEY"] == "aws-" + PASSWORD
    for name in [name for name in os.environ if name.startswith("RUNWAY_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("RUNWAY_"):
            monkeypatch.setenv(name, value)
    assert Settings() == settings  # the child loads exactly these settings, secrets included


def test_an_invalid_combination_names_settings_not_secrets() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(kafka_sasl_username="runway", kafka_sasl_password=PASSWORD)
    text = str(raised.value)
    assert PASSWORD not in text
    assert "RUNWAY_KAFKA_SASL_USERNAME and RUNWAY_KAFKA_SASL_PASSWORD set" in text
    assert "RUNWAY_KAFKA_SECURITY_PROTOCOL=PLAINTEXT sends no SASL credentials" in text


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "u"},
            "RUNWAY_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs RUNWAY_KAFKA_SASL_USERNAME and "
            "RUNWAY_KAFKA_SASL_PASSWORD.",
        ),
        (
            {"kafka_ssl_cafile": "/etc/hostname"},
            "RUNWAY_KAFKA_SSL_CAFILE is set, but RUNWAY_KAFKA_SECURITY_PROTOCOL=PLAINTEXT does "
            "not use TLS.",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/no/such/ca.pem"},
            "RUNWAY_KAFKA_SSL_CAFILE=/no/such/ca.pem: no such file.",
        ),
        (
            {"redis_ssl_cafile": "/etc/hostname"},
            "RUNWAY_REDIS_SSL_CAFILE is set, but RUNWAY_REDIS_URL is not a rediss:// (TLS) URL.",
        ),
        (
            {"redis_url": "redis://:inline@r:6379/0", "redis_password": "p"},
            "RUNWAY_REDIS_PASSWORD is set and RUNWAY_REDIS_URL carries a password too",
        ),
        (
            {"redis_url": "redis://someone@r:6379/0", "redis_username": "other"},
            "RUNWAY_REDIS_USERNAME is set and RUNWAY_REDIS_URL names a user too",
        ),
        (
            {"aws_access_key_id": "AKIA"},
            "RUNWAY_AWS_ACCESS_KEY_ID and RUNWAY_AWS_SECRET_ACCESS_KEY go together",
        ),
    ],
)
def test_half_set_or_ignored_credentials_are_refused_at_start(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match="invalid settings") as raised:
        Settings(**settings)
    assert message in str(raised.value)


def test_redis_options_plain_url_has_no_tls_and_no_credentials() -> None:
    assert redis_options(Settings()) == {}


def test_redis_options_tls_with_an_acl_user(cafile: Path) -> None:
    settings = Settings(
        redis_url="rediss://127.0.0.1:6390/0",
        redis_username="runway",
        redis_password=PASSWORD,
        redis_ssl_cafile=cafile,
    )
    assert redis_options(settings) == {
        "username": "runway",
        "password": PASSWORD,
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_ca_certs": str(cafile),
    }


def test_s3_keys_unset_leave_the_aws_chain_in_charge() -> None:
    settings = Settings()
    assert settings.aws_access_key_id is None and settings.aws_secret_access_key is None
    assert s3_keys(settings) == (None, None)
    both = Settings(aws_access_key_id="AKIA", aws_secret_access_key="s3cr3t")
    assert s3_keys(both) == ("AKIA", "s3cr3t")


def test_bootstrap_hosts_are_parsed_for_the_preflight() -> None:
    assert _hosts("a:9096, b,[::1]:9098") == [("a", 9096), ("b", 9092), ("::1", 9098)]


async def test_plaintext_is_never_refused_and_connects_nowhere() -> None:
    # port 9 (discard) on an unroutable name: a connection attempt would fail or hang
    assert await kafka_refusal(Settings(kafka_bootstrap="nowhere.invalid:9")) is None
