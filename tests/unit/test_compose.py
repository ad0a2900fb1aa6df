"""docker-compose.yml: three KRaft brokers, and the worker wired with real Runway settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_names() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def runway_variables(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items() if key.startswith("RUNWAY_")}


def test_every_runway_variable_is_a_setting() -> None:
    known = env_names()
    for name, service in compose()["services"].items():
        unknown = set(runway_variables(service)) - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which are not Settings fields"


def test_three_kafka_brokers_in_kraft_mode() -> None:
    services = compose()["services"]
    brokers = {
        n: s for n, s in services.items() if str(s.get("image", "")).startswith("apache/kafka")
    }
    assert len(brokers) == 3
    assert {s["image"] for s in brokers.values()} == {"apache/kafka:4.1.1"}
    node_ids = {s["environment"]["KAFKA_NODE_ID"] for s in brokers.values()}
    assert node_ids == {"1", "2", "3"}
    for service in brokers.values():
        assert service["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
        voters = service["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]
        assert len(voters.split(",")) == 3


def test_worker_runs_the_production_profile_against_all_brokers() -> None:
    services = compose()["services"]
    worker = services["worker"]
    env = runway_variables(worker)
    assert env["RUNWAY_PROFILE"] == "production"
    assert Settings(**{"profile": env["RUNWAY_PROFILE"]}).effective_replication_factor == 3
    assert len(env["RUNWAY_KAFKA_BOOTSTRAP"].split(",")) == 3
    assert env["RUNWAY_BATCH_VIEW_URI"].startswith("s3://")
    assert worker["command"][:2] == ["runway", "worker"]
    assert "redis" in services and any("minio" in str(s.get("image")) for s in services.values())


def test_published_ports_are_loopback_only() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
