"""The stack's port plans and directory layout (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings
from stack.plan import (
    Layout,
    cluster_for,
    local_s3_credentials,
    postgres_target,
    sasl_client_settings,
    single_broker,
    three_brokers,
)


def test_single_broker_uses_the_dev_ports() -> None:
    cluster = single_broker(Settings())
    assert cluster.bootstrap == "127.0.0.1:9092"
    assert cluster.quorum_voters == "1@127.0.0.1:9093"
    assert (cluster.replication_factor, cluster.min_insync_replicas) == (1, 1)
    assert [node.name for node in cluster.nodes] == ["kafka"]


def test_three_brokers_have_their_own_ports_and_replication() -> None:
    cluster = three_brokers(Settings())
    assert cluster.bootstrap == "127.0.0.1:9192,127.0.0.1:9193,127.0.0.1:9194"
    assert cluster.quorum_voters == "1@127.0.0.1:9195,2@127.0.0.1:9196,3@127.0.0.1:9197"
    assert (cluster.replication_factor, cluster.min_insync_replicas) == (3, 2)
    assert [node.name for node in cluster.nodes] == ["kafka3-1", "kafka3-2", "kafka3-3"]
    assert cluster.node(2).port == 9193


def test_ports_of_both_clusters_never_overlap() -> None:
    settings = Settings()
    ports = [
        port
        for cluster in (single_broker(settings), three_brokers(settings))
        for node in cluster.nodes
        for port in (node.port, node.controller_port)
    ]
    assert len(ports) == len(set(ports)) == 8


def test_cluster_ports_follow_the_setting() -> None:
    cluster = three_brokers(Settings(stack_cluster_port=20000))
    assert [(n.port, n.controller_port) for n in cluster.nodes] == [
        (20000, 20003),
        (20001, 20004),
        (20002, 20005),
    ]


def test_only_one_or_three_brokers() -> None:
    assert cluster_for(Settings(), 3).name == "kafka3"
    with pytest.raises(ValueError, match="1 or 3"):
        cluster_for(Settings(), 2)


def test_layout_is_absolute_and_keeps_everything_under_one_directory(tmp_path: Path) -> None:
    layout = Layout.of(Settings(stack_dir=tmp_path / "s"))
    assert layout.root == (tmp_path / "s").resolve()
    paths = [
        layout.pid_file("redis"),
        layout.log_file("kafka"),
        layout.out_file("kafka"),
        layout.data_dir("postgres"),
        layout.conf_file("kafka", ".properties"),
    ]
    assert all(path.is_relative_to(layout.root) for path in paths)
    assert layout.pid_file("redis").name == "redis.pid"


def test_relative_stack_dir_resolves_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Layout.of(Settings()).root == tmp_path.resolve() / ".stack"


def test_postgres_target_comes_from_the_url() -> None:
    target = postgres_target(Settings(postgres_url="postgresql://reg@127.0.0.1:5433/registry"))
    assert (target.user, target.database) == ("reg", "registry")


def test_the_cluster_has_sasl_ssl_listeners_after_its_controllers() -> None:
    cluster = three_brokers(Settings())
    assert [n.sasl_port for n in cluster.nodes] == [9198, 9199, 9200]
    assert cluster.sasl_bootstrap == "127.0.0.1:9198,127.0.0.1:9199,127.0.0.1:9200"
    assert single_broker(Settings()).sasl_bootstrap == ""
    every = [
        port
        for c in (single_broker(Settings()), cluster)
        for n in c.nodes
        for port in (n.port, n.controller_port, n.sasl_port)
        if port is not None
    ]
    assert len(every) == len(set(every)) == 11


def test_sasl_client_settings_point_at_the_listeners_and_trust_the_stack_ca(
    tmp_path: Path,
) -> None:
    settings = Settings(stack_dir=tmp_path)
    layout = Layout.of(settings)
    update = sasl_client_settings(layout, three_brokers(settings))
    client = settings.model_copy(update=update)
    assert client.kafka_bootstrap == "127.0.0.1:9198,127.0.0.1:9199,127.0.0.1:9200"
    assert client.kafka_security_protocol == "SASL_SSL"
    assert client.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert client.kafka_sasl_username == "runway"
    assert client.kafka_sasl_password is not None
    assert client.kafka_sasl_password.get_secret_value() == "runway-secret"
    assert client.kafka_ssl_cafile == layout.ca_file == layout.root / "conf" / "tls" / "ca.pem"
    with pytest.raises(ValueError, match="no SASL_SSL listener"):
        sasl_client_settings(layout, single_broker(settings))


def test_local_s3_credentials_are_explicit_and_secret() -> None:
    settings = Settings(**local_s3_credentials())
    assert settings.aws_access_key_id == "runway"
    assert settings.aws_secret_access_key is not None
    assert settings.aws_secret_access_key.get_secret_value() == "runway-secret"
    assert "runway-secret" not in repr(settings)
