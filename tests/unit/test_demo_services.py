"""`runway demo`'s plan: its settings, where event time starts, the registration calls, the spec."""

from __future__ import annotations

import os
import random
import socket

import pytest

from config.settings import Settings
from tools.demo import DemoOptions, demo_spec, run_version
from tools.demo_services import busy_ports, demo_settings, first_event_time, registration_calls
from tools.traffic import TrafficSpec, plan_models

HOUR_MS = 3_600_000


@pytest.fixture
def no_runway_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("RUNWAY_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_runway_env")
def test_demo_settings_fill_only_what_the_user_left_unset() -> None:
    made = demo_settings(Settings(), "demo-token")
    assert (
        made.registry_dsn,
        made.api_token,
        made.staleness_reference_window_ms,
        made.staleness_reference_settle_ms,
        made.retrain_cooldown_ms,
    ) == ("postgresql://runway@127.0.0.1:5433/runway", "demo-token", HOUR_MS, 0, HOUR_MS)
    assert made.staleness_windows == "1h,24h" and made.windows == "1h,24h,7d"  # untouched
    given = Settings(
        api_token="mine",
        registry_dsn="sqlite:///r.db",
        staleness_reference_window_ms=2 * HOUR_MS,
        retrain_cooldown_ms=5,
    )
    kept = demo_settings(given, "demo-token")
    assert (
        kept.registry_dsn,
        kept.api_token,
        kept.staleness_reference_window_ms,
        kept.staleness_reference_settle_ms,
        kept.retrain_cooldown_ms,
    ) == ("sqlite:///r.db", "mine", 2 * HOUR_MS, 0, 5)


def test_event_time_starts_on_the_next_hour_after_now_and_every_clock() -> None:
    now = 1_700_000_000_000  # 22:13:20 UTC
    assert first_event_time(now, []) == 1_700_002_800_000  # 23:00
    assert first_event_time(now, [now - 5 * HOUR_MS]) == 1_700_002_800_000
    on_the_hour = 1_700_010_000_000  # 01:00, an earlier run's clock, ahead of the wall
    assert first_event_time(now, [now, on_the_hour]) == on_the_hour + HOUR_MS
    assert first_event_time(1_700_002_800_000, []) == 1_700_002_800_000


def test_registration_calls_models_versions_then_the_chain() -> None:
    plans = plan_models(TrafficSpec(models=5, model_version="v9"), random.Random(0))
    calls = registration_calls(plans, 1_700_002_800_000)
    version = {"trained_at": 1_700_002_800_000, "deployed_at": 1_700_002_800_000}
    tasks = ["binary", "regression", "binary", "regression", "binary"]
    expected = []
    for i, task in enumerate(tasks):
        expected.append(("POST", "/models", {"model_id": f"model-00{i}", "task": task}))
        body = {"version": "v9", "task": task, **version}
        expected.append(("POST", f"/models/model-00{i}/versions", body))
    expected += [
        ("POST", "/dependencies", {"upstream": "model-000", "downstream": "model-001"}),
        ("POST", "/dependencies", {"upstream": "model-001", "downstream": "model-002"}),
        ("POST", "/dependencies", {"upstream": "model-002", "downstream": "model-003"}),
    ]
    assert calls == expected
    one = registration_calls(plan_models(TrafficSpec(models=1), random.Random(0)), 0)
    assert [path for _, path, _ in one] == ["/models", "/models/model-000/versions"]


def test_demo_spec_runs_event_time_speedup_times_the_wall_clock() -> None:
    options = DemoOptions(rate=2000.0, speedup=60.0, drift_models=1, drift_after_s=90.0)
    spec = demo_spec(options, 1_700_002_800_000, "v20231114-221320")
    assert spec.rate == 2000.0
    assert spec.effective_event_rate * 60.0 == pytest.approx(2000.0)
    assert (spec.linger_ms, spec.drift_models, spec.drift_after_ms) == (60_000, 1, 5_400_000)
    assert (spec.start_ms, spec.model_version, spec.label_delay_ms) == (
        1_700_002_800_000,
        "v20231114-221320",
        5000.0,
    )
    assert run_version(1_700_000_000.0) == "v20231114-221320"


def test_busy_ports_names_what_listens() -> None:
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))  # bound, not listening: nothing answers
        taken = listening.getsockname()[1]
        free = closed.getsockname()[1]
        found = busy_ports({"api": ("127.0.0.1", taken), "standin": ("127.0.0.1", free)})
    assert found == [f"api 127.0.0.1:{taken}"]
