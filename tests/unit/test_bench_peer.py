"""`runway bench --peer quix`'s harness: its JSON keys, the peer's command line and connection
settings, and the peer virtualenv's bootstrap (reused when made, a failure said plainly)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from config.settings import Settings
from tools import bench_peer
from tools.bench_peer import (
    PeerSetupError,
    librdkafka_config,
    peer_command,
    peer_figures,
    peer_python,
)


def run(events_per_s: float, at_first: int = 0, cpu_s: float = 10.0) -> dict[str, float]:
    return {
        "events_per_s": events_per_s,
        "elapsed_s": 20.0,
        "events_at_first_commit": at_first,
        "startup_s": 3.5,
        "peak_rss_bytes": 300_000_000,
        "cpu_s": cpu_s,
        "joined_records": 450,
    }


def test_the_figures_are_the_peers_and_the_ratios_worker_over_peer() -> None:
    figures = peer_figures(
        run(40_000.0, at_first=1_000, cpu_s=33.0),
        run(10_000.0),
        worker_events_per_s=30_000.0,
        worker_single_events_per_s=15_000.0,
        events=100_000,
    )
    assert figures["peer_events_per_s"] == 40_000.0
    assert figures["peer_single_record_events_per_s"] == 10_000.0
    assert figures["peer_ratio"] == 0.75  # 30,000 / 40,000
    assert figures["peer_single_ratio"] == 1.5  # 15,000 / 10,000
    assert figures["peer_events_per_cpu_s"] == 3_000.0  # (100,000 - 1,000) / 33
    assert figures["peer_peak_rss_bytes"] == 300_000_000
    assert figures["peer_cpu_s"] == 33.0
    assert figures["peer_joined_records"] == 450
    assert (figures["peer_s"], figures["peer_single_s"]) == (20.0, 20.0)
    assert figures["peer_version"] == f"quixstreams {bench_peer.QUIXSTREAMS_VERSION}"


def test_plaintext_kafka_is_the_bootstrap_alone() -> None:
    settings = Settings(kafka_bootstrap="h:1")
    assert librdkafka_config(settings) == {
        "bootstrap.servers": "h:1",
        "security.protocol": "PLAINTEXT",
    }


def test_sasl_ssl_carries_the_ca_and_the_login(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("")
    settings = Settings(
        kafka_bootstrap="h:1",
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_cafile=tmp_path / "ca.pem",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="runway",
        kafka_sasl_password=SecretStr("s3cret"),
    )
    assert librdkafka_config(settings) == {
        "bootstrap.servers": "h:1",
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(tmp_path / "ca.pem"),
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "runway",
        "sasl.password": "s3cret",
    }


def test_the_command_runs_the_script_over_the_phase_topics_with_the_worker_settings() -> None:
    settings = Settings(
        topic_prefix="bench-x.",
        app_id="bench-x",
        partitions=16,
        checkpoint_interval_ms=1_500,
        label_ttl_ms=10,
        early_outcome_ttl_ms=20,
        done_retention_ms=30,
    )
    command = peer_command(Path("/venv/bin/python"), settings, Path("/state"))
    assert command[:2] == ["/venv/bin/python", str(bench_peer.PEER_SCRIPT)]
    options = dict(zip(command[2::2], command[3::2], strict=True))
    assert options == {
        "--predictions": "bench-x.predictions",
        "--outcomes": "bench-x.outcomes",
        "--output": "bench-x.peer-quix-joined",
        "--group": "bench-x-peer-quix",
        "--state-dir": "/state",
        "--commit-interval": "1.5",
        "--partitions": "16",
        "--replication-factor": str(settings.effective_replication_factor),
        "--label-ttl-ms": "10",
        "--early-outcome-ttl-ms": "20",
        "--done-retention-ms": "30",
    }


def test_a_made_venv_is_reused_without_running_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = tmp_path / "peer"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / ".installed-quixstreams-9.9.9").write_text("")

    def refuse(command: list[str], what: str) -> None:
        raise AssertionError(f"ran {command}")

    monkeypatch.setattr(bench_peer, "_run", refuse)
    assert peer_python(venv, "9.9.9", emit=lambda _: None) == venv / "bin" / "python"


def test_a_changed_pin_rebuilds_and_a_failed_step_says_what_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = tmp_path / "peer"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / ".installed-quixstreams-1.0.0").write_text("")  # another version's marker
    ran: list[list[str]] = []
    real_run = bench_peer._run
    failing = [sys.executable, "-c", "print('no network'); raise SystemExit(3)"]

    def pip_fails(command: list[str], what: str) -> None:
        ran.append(command)
        if "pip" in command:
            real_run(failing, what)

    monkeypatch.setattr(bench_peer, "_run", pip_fails)
    with pytest.raises(PeerSetupError) as caught:
        peer_python(venv, "9.9.9", emit=lambda _: None)
    message = str(caught.value)
    assert "installing quixstreams==9.9.9" in message and "exit 3" in message
    assert "no network" in message
    assert ran[0][1:4] == ["-m", "venv", "--clear"]
    assert not (venv / ".installed-quixstreams-9.9.9").exists()
