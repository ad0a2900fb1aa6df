"""The dashboard in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright,
against a `runway api` process with a seeded registry (SQLite), a seeded speed view in the real
Redis and a stand-in retrain agent /health.

Expected figures come from the seed below (which verdicts carry which figure), never from the
dashboard's code. Screenshots go to the test's output directory; with
RUNWAY_DASHBOARD_DOCS_SCREENSHOTS=1 they are also copied to docs/ (README's pictures).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright
from redis import Redis

from config.settings import Settings
from registry.records import DependencyIn, ModelIn, VersionIn
from registry.store import Store, make_engine
from stack.processes import RunwayProcess, free_port, wait_healthy
from tests.integration.harness import wait_for

# the module's fixtures (API process, browser) and its tests share the session's event loop
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parents[2] / "docs"
# event time of the first verdict: the last half hour, so that pages read as a live fleet would
T0 = (int(time.time()) // 60 - 30) * 60_000
STEP = 60_000
TOKEN = "dash-write-token"

# model -> its latest state (None: no verdict recorded)
STATES: dict[str, str | None] = {
    "churn-a": "STALE",
    "churn-b": "WARNING",
    "churn-c": "FRESH",
    "ranker": "FRESH",
    "pricing": "WARNING",
    "newcomer": None,
}
HISTORY = 12  # churn-a's verdicts
DELAYED = 2  # its first verdicts have no performance figures (ground truth delayed)
NO_LABELS = 3  # ... and no labels at all, so no label delay either
EDGES = [
    ("events-raw", "churn-a", "dataset"),
    ("tenure", "churn-a", "feature"),
    ("churn-a", "churn-b", "model"),
    ("churn-b", "churn-c", "model"),
]
RETRAIN_HEALTH = {
    "status": "degraded", "ready": True, "group": "dash-retrain", "breaker": "open",
    "breaker_opened": 2, "consecutive_failures": 5, "seconds_until_half_open": 12.5,
    "queue_depth": 7, "models_in_flight": 3, "orchestrator_calls": 41,
}  # fmt: skip


def verdict(model_id: str, i: int, state: str, **metrics: Any) -> dict[str, Any]:
    score = {"FRESH": 0.1, "WARNING": 0.5, "STALE": 0.8}[state]
    return {
        "model_id": model_id, "model_version": "v1", "state": state, "score": score,
        "basis": ["drift", "age"], "uncertainty": 0.2, "reason": f"{state}: seeded verdict {i}",
        "event_time": T0 + i * STEP, "emitted_at": T0 + i * STEP + 500,
        "metrics": metrics, "impacted": [],
    }  # fmt: skip


def churn_a_history() -> list[dict[str, Any]]:
    """Drifting, then degrading: PSI 0.02 -> 0.35, AUC 0.90 -> 0.68 once labels arrive."""
    out = []
    for i in range(HISTORY):
        m: dict[str, Any] = {
            "psi": round(0.02 + 0.03 * i, 4),
            "feature_psi.tenure": round(0.01 + 0.035 * i, 4),
            "feature_psi.region": 0.01,
            "window": "1h", "window_ms": 3_600_000,
            "window_predictions": 1000 + 100 * i,
            "window_labels": 0 if i < NO_LABELS else 50 * i,
            "window_label_delay_p50_ms": None if i < NO_LABELS else 20_000 + 1000 * i,
            "window_label_delay_p95_ms": None if i < NO_LABELS else 60_000 + 2000 * i,
        }  # fmt: skip
        if i >= DELAYED:
            m.update(metric="roc_auc", metric_value=round(0.9 - 0.02 * i, 4),
                     baseline_value=0.9, degradation_noise=0.01)  # fmt: skip
        state = "FRESH" if i < 5 else "WARNING" if i < 9 else "STALE"
        out.append(verdict("churn-a", i, state, **m))
    return out


@dataclass
class Dashboard:
    url: str
    store: Store
    settings: Settings
    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        """Every console error and uncaught exception of the page fails the test."""

        def console(msg: ConsoleMessage) -> None:
            if msg.type == "error":
                self.errors.append(f"console: {msg.text} ({msg.location})")

        page.on("console", console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        return page


def seed(store: Store, redis: Redis, prefix: str) -> None:
    store.create_schema()
    for model_id in STATES:
        store.upsert_model(ModelIn(model_id=model_id, task="binary", owner="ml-platform"))
    store.upsert_version(
        "churn-a",
        VersionIn(version="v1", task="binary", trained_at=T0 - 86_400_000,
                  deployed_at=T0 - 3_600_000, baseline_metrics={"roc_auc": 0.9}),
    )  # fmt: skip
    for up, down, kind in EDGES:
        store.add_dependency(DependencyIn(upstream=up, downstream=down, kind=kind))
    for event in churn_a_history():
        store.record_staleness(event)
    for i, model_id in enumerate(["churn-b", "churn-c", "ranker", "pricing"]):
        state = STATES[model_id]
        assert state is not None
        store.record_staleness(verdict(model_id, i, "FRESH", psi=0.01))  # an older verdict
        store.record_staleness(verdict(model_id, 20 + i, state, psi=0.05))
    rid = f"churn-a:v1:{T0 + 600_000}"
    for status, at in (("queued", 1), ("started", 2), ("succeeded", 3)):
        store.record_retrain(rid, "churn-a", "v1", T0 + 600_000, status, None, T0 + at * 1000)
    for n, model_id in enumerate(STATES):
        redis.hset(
            f"{prefix}:model:{model_id}:window:1h",
            mapping={"predictions": 1200 * (n + 1), "labeled": 600 * (n + 1),
                     "label_coverage": 0.5, "label_delay_p95_ms": 90_000 + n},
        )  # fmt: skip


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = json.dumps(RETRAIN_HEALTH).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def retrain_health_url() -> Iterator[str]:
    """A stand-in for the retrain agent's /health (its JSON, fixed)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()


@pytest.fixture(scope="module")
async def dashboard(
    stack: object, tmp_path_factory: pytest.TempPathFactory, retrain_health_url: str
) -> AsyncIterator[Dashboard]:
    tmp = tmp_path_factory.mktemp("dashboard")
    prefix = f"dash-{uuid.uuid4().hex[:8]}"
    dsn = f"sqlite:///{tmp / 'registry.sqlite3'}"
    settings = Settings(registry_dsn=dsn, redis_key_prefix=prefix)
    store = Store(make_engine(dsn, 5.0))
    redis = Redis.from_url(settings.redis_url)
    seed(store, redis, prefix)
    port = free_port()
    env = {
        **os.environ,
        "RUNWAY_REGISTRY_DSN": dsn,
        "RUNWAY_API_PORT": str(port),
        "RUNWAY_API_TOKEN": TOKEN,
        "RUNWAY_REDIS_KEY_PREFIX": prefix,
        "RUNWAY_DASHBOARD_RETRAIN_HEALTH_URL": retrain_health_url,
    }
    base = f"http://127.0.0.1:{port}"
    api = RunwayProcess("runway api", ["api"], env, tmp / "api.log", f"{base}/health")
    api.start()
    try:
        await wait_healthy([api], 90.0)
        yield Dashboard(f"{base}/dashboard/", store, settings)
    finally:
        api.stop()
        store.dispose()
        keys = list(redis.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            redis.delete(*keys)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    async with async_playwright() as p:
        found = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield found
        await found.close()


@pytest.fixture
async def page(browser: Browser, dashboard: Dashboard) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    dashboard.errors.clear()
    yield dashboard.watch(await context.new_page())
    await context.close()
    assert dashboard.errors == []


def shoot(path: Path, docs_name: str) -> None:
    if os.environ.get("RUNWAY_DASHBOARD_DOCS_SCREENSHOTS") == "1":
        shutil.copyfile(path, DOCS / docs_name)


async def rows(page: Page) -> dict[str, str]:
    found = await page.eval_on_selector_all(
        "#fleet tbody tr", "trs => trs.map(tr => [tr.dataset.modelId, tr.dataset.state])"
    )
    return dict(found)


async def wait_rows(page: Page, want: dict[str, str], what: str) -> None:
    async def same() -> bool:
        return await rows(page) == want

    await wait_for(same, 30.0, what)


async def test_fleet_lists_states_counts_and_filters(
    page: Page, dashboard: Dashboard, tmp_path: Path
) -> None:
    await page.goto(dashboard.url)
    every = {m: s or "UNKNOWN" for m, s in STATES.items()}
    await wait_rows(page, every, "the fleet's rows")
    counts = await page.eval_on_selector_all(
        "#counts .count", "bs => bs.map(b => [b.dataset.state, b.querySelector('.n').textContent])"
    )
    assert dict(counts) == {"STALE": "1", "WARNING": "2", "FRESH": "2", "UNKNOWN": "1"}
    # worst first by default: STALE, then WARNING, ...
    order = list((await rows(page)).values())
    assert order == ["STALE", "WARNING", "WARNING", "FRESH", "FRESH", "UNKNOWN"]
    # the speed view's figures: predictions per hour of the 1h window, coverage, delay p95
    first = page.locator('#fleet tr[data-model-id="churn-a"] td')
    assert await first.nth(5).text_content() == "50.0 %"
    assert await first.nth(6).text_content() == "90.0 s"  # 90,000 ms
    assert await first.nth(7).text_content() == "1,200"
    assert "breaker open" in (await page.locator("#retrain").text_content() or "")
    assert "queue 7" in (await page.locator("#retrain").text_content() or "")
    await page.screenshot(path=tmp_path / "fleet.png", full_page=True)
    shoot(tmp_path / "fleet.png", "dashboard-fleet.png")

    await page.select_option("#state-filter", "WARNING")
    await wait_rows(page, {"churn-b": "WARNING", "pricing": "WARNING"}, "the state filter")
    await page.fill("#text-filter", "churn")
    await wait_rows(page, {"churn-b": "WARNING"}, "state and text filters")
    await page.select_option("#state-filter", "")
    await wait_rows(
        page, {"churn-a": "STALE", "churn-b": "WARNING", "churn-c": "FRESH"}, "the text filter"
    )
    await page.fill("#text-filter", "")
    await page.click('#fleet th[data-key="model_id"]')  # sorted by id
    ids = list((await rows(page)).keys())
    assert ids == sorted(STATES)
    await page.click('#fleet th[data-key="model_id"]')  # and back
    assert list((await rows(page)).keys()) == sorted(STATES, reverse=True)


async def points(page: Page, chart: str, series: str) -> int:
    return await page.locator(
        f'svg[data-chart="{chart}"] g[data-series="{series}"] circle.pt'
    ).count()


async def test_model_page_draws_charts_graph_and_history(
    page: Page, dashboard: Dashboard, tmp_path: Path
) -> None:
    await page.goto(dashboard.url + "model?id=churn-a")
    labelled = HISTORY - NO_LABELS
    await wait_for(
        lambda: page.locator("#verdicts").get_attribute("data-count"), 30.0, "the verdicts"
    )
    assert await page.locator("#verdicts").get_attribute("data-count") == str(HISTORY)
    want = {
        ("score", "score"): HISTORY,
        ("metric", "metric_value"): HISTORY - DELAYED,
        ("psi", "psi"): HISTORY,
        ("psi", "feature_psi"): HISTORY,
        ("volume", "predictions_per_hour"): HISTORY,
        ("volume", "labels_per_hour"): HISTORY,
        ("delay", "delay_p50"): labelled,
        ("delay", "delay_p95"): labelled,
    }
    for (chart, series), n in want.items():
        assert await points(page, chart, series) == n, (chart, series)
    # the levels are drawn: baseline, WARNING and STALE lines with one vertex per verdict
    for chart, kinds in {"metric": ("baseline_value", "metric_warning", "metric_stale"),
                         "psi": ("psi_warning", "psi_stale"),
                         "score": ("score_warning", "score_stale")}.items():  # fmt: skip
        for series in kinds:
            g = page.locator(f'svg[data-chart="{chart}"] g[data-series="{series}"]')
            n = HISTORY - DELAYED if chart == "metric" else HISTORY
            assert await g.get_attribute("data-points") == str(n), series
    # impact and lineage: dataset and feature upstream, churn-b and churn-c downstream
    nodes = await page.eval_on_selector_all(
        "#graph g.node", "gs => gs.map(g => [g.dataset.node, g.dataset.kind])"
    )
    assert sorted(nodes) == sorted(
        [["churn-a", "model"], ["churn-b", "model"], ["churn-c", "model"],
         ["events-raw", "dataset"], ["tenure", "feature"]]
    )  # fmt: skip
    edges = await page.eval_on_selector_all(
        "#graph line.edge", "ls => ls.map(l => [l.dataset.from, l.dataset.to])"
    )
    assert sorted(map(tuple, edges)) == sorted((u, d) for u, d, _ in EDGES)
    retrains = page.locator("#retrains tbody tr")
    assert await retrains.count() == 1
    assert await retrains.first.get_attribute("data-status") == "succeeded"
    assert "queued" in (await retrains.first.text_content() or "")
    assert await page.locator("#model-state .badge").get_attribute("data-state") == "STALE"
    assert await page.locator("#versions tbody tr").count() == 1
    await page.screenshot(path=tmp_path / "model.png", full_page=True)
    shoot(tmp_path / "model.png", "dashboard-model.png")


async def test_a_new_verdict_appears_without_reload(
    page: Page, browser: Browser, dashboard: Dashboard, tmp_path: Path
) -> None:
    await page.goto(dashboard.url + "model?id=churn-a")
    await wait_for(
        lambda: page.locator("#verdicts").get_attribute("data-count"), 30.0, "the verdicts"
    )
    fleet = dashboard.watch(await page.context.new_page())
    await fleet.goto(dashboard.url)
    await wait_for(lambda: rows(fleet), 30.0, "the fleet's rows")
    for p in (page, fleet):
        await p.evaluate("window.__notReloaded = true")

    dashboard.store.record_staleness(
        verdict("churn-a", HISTORY, "STALE", psi=0.4, metric="roc_auc", metric_value=0.6,
                baseline_value=0.9, degradation_noise=0.01)
    )  # fmt: skip
    dashboard.store.record_staleness(verdict("ranker", 40, "STALE", psi=0.3))

    async def model_updated() -> bool:
        return await page.locator("#verdicts").get_attribute("data-count") == str(HISTORY + 1)

    await wait_for(model_updated, 30.0, "the new verdict on the model page")
    assert await points(page, "metric", "metric_value") == HISTORY - DELAYED + 1
    assert await points(page, "psi", "psi") == HISTORY + 1

    async def fleet_updated() -> bool:
        return (await rows(fleet)).get("ranker") == "STALE"

    await wait_for(fleet_updated, 30.0, "ranker turning STALE on the fleet page")
    stale = fleet.locator('#counts .count[data-state="STALE"] .n')
    await wait_for(lambda: _is(stale.text_content(), "2"), 30.0, "the STALE count")
    for p in (page, fleet):
        assert await p.evaluate("window.__notReloaded") is True
    await fleet.screenshot(path=tmp_path / "fleet-after.png", full_page=True)


async def _is(text: Any, want: str) -> bool:
    return bool(await text == want)
