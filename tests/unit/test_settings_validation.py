"""Settings are checked as a whole: a wrong combination is one error naming the settings."""

from __future__ import annotations

import os
from typing import Any

import pytest
from pydantic import ValidationError

from config.settings import Settings
from config.windows import bucket_retention, parse_windows

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@pytest.fixture(autouse=True)
def _no_runway_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test passes counts, not the machine's RUNWAY_* variables."""
    for name in list(os.environ):
        if name.upper().startswith("RUNWAY_"):
            monkeypatch.delenv(name)


def make(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def rejected(**values: Any) -> str:
    with pytest.raises(ValidationError) as info:
        make(**values)
    assert info.value.error_count() == 1  # one error, however many problems it lists
    return str(info.value)


# -- what the repository uses stays valid ----------------------------------------------------------


def test_the_defaults_are_valid() -> None:
    settings = make()
    assert settings.agents == "join,speed_view,batch_view,staleness"
    assert settings.checkpoint_retry_timeout_s == 600.0
    assert settings.health_stall_s == 60.0
    assert settings.health_max_checkpoint_age_s == 120.0


@pytest.mark.parametrize(
    "overrides",
    [
        # tools/demo_services.demo_settings and tests/integration/test_staleness_e2e
        {"staleness_reference_window_ms": HOUR_MS, "staleness_reference_settle_ms": 0},
        {
            "staleness_windows": "1h",
            "staleness_reference_window_ms": HOUR_MS,
            "staleness_reference_settle_ms": 0,
        },
        {"staleness_reference_window_ms": 2 * HOUR_MS, "staleness_reference_settle_ms": 0},
        {"staleness_windows": "60m", "windows": "1h,24h,7d"},  # same duration, other spelling
        {"windows": "1h,24h", "staleness_reference_settle_ms": 0},  # 24 h reference fits exactly
        {"windows": " 30m , 24h ,7d", "staleness_windows": "30m"},
    ],
)
def test_combinations_in_use_are_valid(overrides: dict[str, Any]) -> None:
    make(**overrides)


@pytest.mark.parametrize(
    "agents",
    [
        "join,speed_view,batch_view,staleness",
        "join",
        "batch_view",
        "join,batch_view",
        "join,speed_view",
        "join,staleness",
        " staleness , join ",
        "join,speed_view,batch_view,staleness,",
    ],
)
def test_agent_lists_a_worker_may_run_are_valid(agents: str) -> None:
    assert make(agents=agents).agents == agents


# -- agents ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("agents", ["join,speedview", "join,retrain"])
def test_an_unknown_agent_is_rejected(agents: str) -> None:
    message = rejected(agents=agents)
    assert "RUNWAY_AGENTS" in message and "unknown agent" in message
    assert "allowed: join, speed_view, batch_view, staleness" in message


@pytest.mark.parametrize("agents", ["", " , "])
def test_no_agent_is_rejected(agents: str) -> None:
    message = rejected(agents=agents)
    assert "RUNWAY_AGENTS" in message and "names no agent" in message


@pytest.mark.parametrize(
    ("agents", "orphan"),
    [
        ("speed_view", "speed_view"),
        ("staleness,batch_view", "staleness"),
        ("speed_view,staleness", "speed_view and staleness"),
    ],
)
def test_views_of_the_join_need_the_join(agents: str, orphan: str) -> None:
    message = rejected(agents=agents)
    assert "RUNWAY_AGENTS" in message
    assert orphan in message and "join must be in the same list" in message


# -- windows ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "setting"),
    [
        ("windows", "1h,24x", "RUNWAY_WINDOWS"),
        ("windows", "", "RUNWAY_WINDOWS"),
        ("staleness_windows", "1 hour", "RUNWAY_STALENESS_WINDOWS"),
    ],
)
def test_a_window_that_is_not_a_duration_is_rejected(field: str, value: str, setting: str) -> None:
    message = rejected(**{field: value})
    assert setting in message and "is not like 1h, 24h or 7d" in message


def test_a_staleness_window_outside_the_windows_is_rejected() -> None:
    message = rejected(staleness_windows="1h,12h")
    assert "RUNWAY_STALENESS_WINDOWS='1h,12h'" in message
    assert "12h not among RUNWAY_WINDOWS='1h,24h,7d'" in message


def test_dropping_a_window_that_staleness_judges_is_rejected() -> None:
    message = rejected(windows="24h,7d")
    assert "RUNWAY_STALENESS_WINDOWS" in message and "1h not among RUNWAY_WINDOWS" in message


# -- the staleness reference and the longest window ------------------------------------------------


def test_the_reference_lookback_is_the_longest_window() -> None:
    assert make().staleness_reference_lookback_ms == 7 * DAY_MS
    settings = make(windows="1h,48h,24h", staleness_reference_settle_ms=0)
    assert settings.staleness_reference_lookback_ms == 48 * HOUR_MS
    # ... which is how long the join keeps its 1-hour buckets
    assert bucket_retention(parse_windows(settings.windows))["h"] == 48 * HOUR_MS


def test_the_longest_window_must_keep_hour_buckets() -> None:
    message = rejected(
        windows="1h,6h",
        staleness_windows="1h",
        staleness_reference_window_ms=HOUR_MS,
        staleness_reference_settle_ms=0,
    )
    assert "RUNWAY_WINDOWS='1h,6h'" in message and "longer than 6h" in message


def test_a_reference_and_settle_longer_than_the_longest_window_is_rejected() -> None:
    message = rejected(windows="1h,24h")  # 24 h reference + 24 h settle > 24 h
    assert "RUNWAY_STALENESS_REFERENCE_WINDOW_MS=86400000" in message
    assert "RUNWAY_STALENESS_REFERENCE_SETTLE_MS=86400000" in message
    assert "longest of RUNWAY_WINDOWS='1h,24h'" in message


def test_the_reference_counts_in_whole_hours() -> None:
    make(
        windows="1h,24h",
        staleness_reference_window_ms=23 * HOUR_MS,
        staleness_reference_settle_ms=HOUR_MS,
    )
    message = rejected(
        windows="1h,24h",
        staleness_reference_window_ms=23 * HOUR_MS + 1,  # 24 h of buckets
        staleness_reference_settle_ms=HOUR_MS,
    )
    assert "rounded up to 24h" in message


# -- one error for everything ----------------------------------------------------------------------


def test_every_problem_comes_in_one_error() -> None:
    message = rejected(agents="speed_view,bogus", windows="1h,24h", staleness_windows="1h,7d")
    assert message.count("RUNWAY_AGENTS") == 2  # unknown agent, and speed_view without join
    assert "RUNWAY_STALENESS_WINDOWS" in message
    assert "RUNWAY_STALENESS_REFERENCE_SETTLE_MS" in message


def test_the_error_does_not_echo_other_settings() -> None:
    message = rejected(agents="bogus", api_token="s3cret-token")
    assert "s3cret-token" not in message


def test_the_environment_is_validated_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWAY_AGENTS", "staleness")
    with pytest.raises(ValidationError, match="join must be in the same list"):
        make()


@pytest.mark.parametrize(
    "field", ["checkpoint_retry_timeout_s", "health_stall_s", "health_max_checkpoint_age_s"]
)
def test_new_timeouts_must_be_positive(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        make(**{field: 0})
    assert getattr(make(**{field: 1.5}), field) == 1.5
