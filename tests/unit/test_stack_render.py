"""The stack's configuration files and command lines (pure text)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from config.settings import Settings
from stack import render
from stack.kafka import new_cluster_id
from stack.plan import single_broker, three_brokers


def parse(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


def test_single_broker_properties() -> None:
    cluster = single_broker(Settings())
    props = parse(render.server_properties(cluster, cluster.nodes[0], Path("/s/data/kafka")))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["log.dirs"] == "/s/data/kafka"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"
    assert int(props["message.max.bytes"]) == int(props["replica.fetch.max.bytes"]) == 10485760


def test_three_broker_properties() -> None:
    cluster = three_brokers(Settings())
    node = cluster.node(3)
    props = parse(render.server_properties(cluster, node, Path("/s/data/kafka3-3")))
    assert props["node.id"] == "3"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9194,CONTROLLER://127.0.0.1:9197"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9194"
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["offsets.topic.replication.factor"] == "3"


def test_every_listener_is_loopback() -> None:
    for cluster in (single_broker(Settings()), three_brokers(Settings())):
        for node in cluster.nodes:
            props = parse(render.server_properties(cluster, node, Path("/d")))
            for listener in props["listeners"].split(","):
                assert "://127.0.0.1:" in listener


def test_log4j2_writes_to_the_stack_log_file() -> None:
    text = render.log4j2_properties(Path("/s/logs/kafka.log"))
    assert "appender.file.fileName = /s/logs/kafka.log" in text
    assert "rootLogger.appenderRef.file.ref = file" in text


def test_kafka_command_keeps_the_heap_small_and_names_its_config() -> None:
    command = render.kafka_command(
        "/usr/bin/java",
        Path("/c/libs"),
        "512m",
        Path("/s/conf/kafka-log4j2.properties"),
        Path("/s/conf/kafka.properties"),
        Path("/s/logs"),
    )
    assert command[0] == "/usr/bin/java"
    assert "-Xmx512m" in command
    assert "-Dlog4j2.configurationFile=/s/conf/kafka-log4j2.properties" in command
    assert command[command.index("-cp") + 1] == "/c/libs/*"
    assert command[-2:] == ["kafka.Kafka", "/s/conf/kafka.properties"]


def test_pom_asks_for_kafka_and_its_tools_at_runtime() -> None:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.fromstring(render.kafka_pom("4.1.1"))
    deps = {
        (d.findtext("m:artifactId", namespaces=ns), d.findtext("m:version", namespaces=ns))
        for d in root.iterfind("m:dependencies/m:dependency", ns)
    }
    assert ("kafka_2.13", "4.1.1") in deps
    assert ("kafka-tools", "4.1.1") in deps
    assert any(artifact == "log4j-slf4j2-impl" for artifact, _ in deps)


def test_redis_conf_binds_loopback_and_never_saves() -> None:
    text = render.redis_conf(6379, Path("/s/data/redis"), Path("/s/logs/redis.log"))
    lines = set(text.splitlines())
    assert {"bind 127.0.0.1", "port 6379", 'save ""', "dir /s/data/redis"} <= lines
    assert "logfile /s/logs/redis.log" in lines


def test_postgres_and_s3_listen_on_loopback() -> None:
    pg = render.postgres_command("/pg/bin/postgres", Path("/s/data/postgres"), 5433)
    assert "listen_addresses=127.0.0.1" in pg and pg[pg.index("-p") + 1] == "5433"
    s3 = render.s3_command("/venv/bin/python", 9000)
    assert s3[s3.index("-H") + 1] == "127.0.0.1" and s3[-1] == "9000"


def test_cluster_ids_look_like_kafka_uuids() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") and "=" not in i for i in ids)


def test_three_broker_nodes_add_a_sasl_ssl_listener_with_a_keystore() -> None:
    cluster = three_brokers(Settings())
    node = cluster.node(2)
    props = parse(
        render.server_properties(cluster, node, Path("/d"), Path("/s/conf/tls/keystore.pem"))
    )
    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:9193,CONTROLLER://127.0.0.1:9196,SASL_SSL://127.0.0.1:9199"
    )
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9193,SASL_SSL://127.0.0.1:9199"
    assert props["listener.security.protocol.map"] == (
        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
    )
    assert props["inter.broker.listener.name"] == "PLAINTEXT"  # the brokers among themselves
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    )
    assert props["listener.name.sasl_ssl.ssl.keystore.type"] == "PEM"
    assert props["listener.name.sasl_ssl.ssl.keystore.location"] == "/s/conf/tls/keystore.pem"
    assert props["connection.failed.authentication.delay.ms"] == "0"


def test_the_dev_broker_never_gets_a_sasl_listener() -> None:
    cluster = single_broker(Settings())
    text = render.server_properties(cluster, cluster.nodes[0], Path("/d"), Path("/k.pem"))
    assert "SASL" not in text


def test_storage_format_adds_the_scram_user() -> None:
    credential = render.scram_credential("runway", "runway-secret")
    assert credential == "SCRAM-SHA-512=[name=runway,password=runway-secret]"
    command = render.storage_format_command(
        "/usr/bin/java", Path("/c/libs"), "abc", Path("/s/conf/kafka3-1.properties"), [credential]
    )
    assert command[command.index("--add-scram") + 1] == credential
    assert command[-1] == "--ignore-formatted"
    plain = render.storage_format_command("/j", Path("/l"), "abc", Path("/p"))
    assert "--add-scram" not in plain


def test_scram_user_command_alters_the_user_on_the_running_cluster() -> None:
    command = render.scram_user_command("/j", Path("/l"), "127.0.0.1:9192", "runway", "pw")
    assert command[command.index("-cp") + 1 :][:2] == ["/l/*", "kafka.admin.ConfigCommand"]
    assert command[command.index("--bootstrap-server") + 1] == "127.0.0.1:9192"
    assert command[command.index("--add-config") + 1] == "SCRAM-SHA-512=[password=pw]"
    assert command[-4:] == ["--entity-type", "users", "--entity-name", "runway"]
