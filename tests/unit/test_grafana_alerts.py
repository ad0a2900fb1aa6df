"""deploy/grafana/runway.json and deploy/prometheus/runway-alerts.yml, checked offline.

`promtool` (Debian's `prometheus` package; stack/bootstrap.sh installs it) checks the rules,
runs their unit cases (tests/unit/prometheus/alerts_test.yml) and parses every query of the
dashboard; every `runway_*` name either file mentions must be one a Runway process exports,
read from the processes' own Prometheus registries (a counter `x` is queried as `x_total`, a
histogram as `x_bucket`, `x_sum`, `x_count`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from autoscale.metrics import LagMetrics
from config.settings import Settings
from contracts.telemetry import Telemetry
from registry.agent import RegistryAgent
from registry.api import create_api
from registry.store import Store
from registry.tokens import resolve_tokens
from retrain.breaker import CircuitBreaker
from retrain.service import breaker_config
from retrain.telemetry import RetrainTelemetry

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "runway.json"
RULES = ROOT / "deploy" / "prometheus" / "runway-alerts.yml"
RULE_CASES = ROOT / "tests" / "unit" / "prometheus" / "alerts_test.yml"
NAME = re.compile(r"\brunway_[a-z0-9_]+\b")
SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is missing: install Debian's `prometheus` package "
            "(sudo apt-get install prometheus; stack/bootstrap.sh does)",
            pytrace=False,
        )
    return subprocess.run(
        [found, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target, rows' nested panels included."""
    out = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for each in [panel, *panel.get("panels", [])]:
            out += [(each["title"], t["expr"]) for t in each.get("targets", [])]
    return out


def families(registry: CollectorRegistry) -> dict[str, str]:
    return {f.name: f.type for f in registry.collect()}


async def api_families() -> dict[str, str]:
    """The registry API's, as its /metrics serves them (its registry lives inside the app)."""
    tokens = resolve_tokens("dev", "t", {})

    async def kafka_ok() -> bool:
        return True

    app = create_api(Settings(), SimpleNamespace(degraded_reads=0), kafka_ok, tokens)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        text = (await client.get("/metrics")).text
    return {f.name: f.type for f in text_string_to_metric_families(text)}


async def exported_series() -> set[str]:
    found: dict[str, str] = {}
    found |= families(Telemetry().registry)  # a join worker
    found |= families(LagMetrics().registry)  # the lag exporter and the autoscaler
    breaker = CircuitBreaker(breaker_config(Settings()), time.monotonic)
    found |= families(RetrainTelemetry(breaker, lambda: 0).registry)  # the retrain agent
    found |= families(RegistryAgent(Settings(), Store(sa.create_engine("sqlite://"))).metrics)
    found |= await api_families()
    return {
        name + suffix
        for name, kind in found.items()
        if name.startswith("runway_")
        for suffix in SERIES_SUFFIXES[kind]
    }


def test_promtool_checks_the_rules_and_runs_their_cases() -> None:
    checked = promtool("check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout
    tested = promtool("test", "rules", RULE_CASES)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    queries = dashboard_queries()
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": expr}
                    for i, (_, expr) in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(queries)} rules found" in checked.stdout


async def test_every_metric_named_is_one_runway_exports() -> None:
    exported = await exported_series()
    # the two per-model metrics of issue 13 are among them, as gauges
    assert {"runway_model_state", "runway_model_staleness_score"} <= exported
    for path in (DASHBOARD, RULES, RULE_CASES):
        named = set(NAME.findall(path.read_text()))
        assert named, path
        assert sorted(named - exported) == [], path.name


def test_the_dashboard_has_what_an_operator_watches() -> None:
    titles = {title for title, _ in dashboard_queries()}
    assert {
        "Throughput",
        "Consumer lag (seconds)",
        "Checkpoint time",
        "Dead letters by reason",
        "Records filled and watchdog seeks",
        "Orchestrator circuit breaker",
        "Bulkhead rejections",
        "Workers",
        "Models by state",
        "Stalest models",
    } <= titles
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)) and doc["uid"] == "runway"


def test_the_rules_follow_the_settings_defaults() -> None:
    """The lag alert's threshold is the autoscaler's scale-up lag, on the join's group."""
    settings = Settings()
    rules = {r["alert"]: r for r in yaml.safe_load(RULES.read_text())["groups"][0]["rules"]}
    assert set(rules) == {
        "RunwayModelStale",
        "RunwayConsumerLagAboveScaleUp",
        "RunwayDeadLettersRising",
        "RunwayRetrainBreakerOpen",
        "RunwayWorkerNoProgress",
        "RunwayWatchdogSeeks",
    }
    lag = rules["RunwayConsumerLagAboveScaleUp"]
    assert lag["expr"].endswith(f"> {settings.autoscale_scale_up_lag_s:g}")
    assert f'group="{settings.app_id}"' in lag["expr"] and lag["for"] == "10m"
    assert f'group="{settings.app_id}"' in rules["RunwayWorkerNoProgress"]["expr"]
    panel = next(
        p for p in json.loads(DASHBOARD.read_text())["panels"] if p["title"].startswith("Consumer")
    )
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1]["value"] == settings.autoscale_scale_up_lag_s
    assert all(f'group="{settings.app_id}"' in t["expr"] for t in panel["targets"])
