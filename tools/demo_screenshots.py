"""Timestamped screenshots of the dashboard while `make demo` runs (`make demo-screenshots`).

Run it beside the demo (another terminal, before or after the demo starts): it waits for the
dashboard of `runway api`, opens the fleet page in headless Chromium (Debian's, through
Playwright, as the browser tests do) and screenshots it every `--every` seconds into `--out`,
named by the seconds since this script started and the UTC time. It reads the same JSON the
page reads and prints when the drifted model (`--model`, the demo's `model-000`) turned WARNING,
then STALE, and when its retrain appeared, in seconds since the script started and since the
first verdict of this run; it screenshots the model's page at each of those, and ends once the
retrain has appeared (exit 0) or at `--timeout` (exit 1).

Only verdicts emitted and retrain steps taken after the script started count, so a registry
holding earlier demo runs does not end it early.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

CHROMIUM = "/usr/bin/chromium"
WARNING, STALE, RETRAIN, FIRST = "WARNING", "STALE", "retrain", "first verdict"


@dataclass
class Timeline:
    """What has happened since `start_ms` (wall clock), each milestone once."""

    model_id: str
    start_ms: int
    seen: dict[str, int] = field(default_factory=dict)  # milestone -> wall ms it happened

    def update(self, fleet: dict[str, Any], retrains: list[dict[str, Any]]) -> list[str]:
        """The milestones new in this observation, each dated by the registry's own wall time
        (the verdict's emission, the retrain step's), not by when this poll saw it."""
        fresh = [r for r in fleet["models"] if (r["last_verdict_at"] or 0) >= self.start_ms]
        found: dict[str, int] = {}
        if fresh:
            found[FIRST] = min(r["last_verdict_at"] for r in fresh)
        mine = [r for r in fresh if r["model_id"] == self.model_id]
        if mine and mine[0]["state"] in (WARNING, STALE):
            found[WARNING] = mine[0]["last_verdict_at"]  # straight to STALE passed WARNING too
        if mine and mine[0]["state"] == STALE:
            found[STALE] = mine[0]["last_verdict_at"]
        steps = [s["at"] for r in retrains for s in r["history"] if s["at"] >= self.start_ms]
        if steps:
            found[RETRAIN] = min(steps)
        new = [m for m in found if m not in self.seen]
        for m in new:
            self.seen[m] = found[m]
        return new

    @property
    def done(self) -> bool:
        return RETRAIN in self.seen and STALE in self.seen


def _stamp(ms: int) -> str:
    return time.strftime("%H%M%S", time.gmtime(ms / 1000))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="runway api's base URL")
    parser.add_argument("--model", default="model-000", help="the drifted model")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between screenshots")
    parser.add_argument("--out", type=Path, default=Path("var/demo/screenshots"))
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after (s)")
    parser.add_argument("--token", default=None, help="a read token, when reads need one")
    args = parser.parse_args(argv)
    # the dev extra's; only this script needs it
    from playwright.sync_api import TimeoutError as PageTimeout
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    started, start_ms = time.monotonic(), int(time.time() * 1000)
    timeline = Timeline(args.model, start_ms)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    fragment = f"#token={args.token}" if args.token else ""
    http = httpx.Client(base_url=args.url, headers=headers, timeout=5.0)

    def elapsed() -> float:
        return time.monotonic() - started

    def say(text: str) -> None:
        print(f"+{elapsed():6.1f}s {time.strftime('%H:%M:%S', time.gmtime())}Z  {text}", flush=True)

    say(f"waiting for {args.url}/dashboard/; screenshots in {args.out}/")
    while True:
        try:
            if http.get("/dashboard/api/fleet").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if elapsed() > args.timeout:
            say("the dashboard never answered")
            return 1
        time.sleep(1.0)
    say("dashboard answers")
    model_url = f"{args.url}/dashboard/model?id={quote(args.model, safe='')}{fragment}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        fleet_page = context.new_page()
        fleet_page.goto(f"{args.url}/dashboard/{fragment}")
        model_page = context.new_page()
        while not timeline.done and elapsed() < args.timeout:
            tick = time.monotonic()
            now_ms = int(time.time() * 1000)
            try:
                fleet = http.get("/dashboard/api/fleet").raise_for_status().json()
                found = http.get("/dashboard/api/model", params={"id": args.model})
            except httpx.HTTPError as exc:  # the demo restarting, or gone: say so, go on
                say(f"the dashboard did not answer: {exc!r}")
                time.sleep(args.every)
                continue
            retrains = found.json()["retrains"] if found.status_code == 200 else []
            new = timeline.update(fleet, retrains)
            row: dict[str, Any] = next(
                (r for r in fleet["models"] if r["model_id"] == args.model), {}
            )
            if new and row:  # the page polls on its own: let it show what the JSON showed
                shown = f'#fleet tr[data-model-id="{args.model}"][data-state="{row["state"]}"]'
                with contextlib.suppress(PageTimeout):  # moved on meanwhile: shoot as it is
                    fleet_page.wait_for_selector(shown, timeout=15_000)
            name = f"fleet-{elapsed():06.1f}s-{_stamp(now_ms)}Z"
            fleet_page.screenshot(path=args.out / f"{name}.png", full_page=True)
            for milestone in new:
                say(f"{args.model} {milestone}: state {row.get('state')}, score "
                    f"{row.get('score')}; {name}.png")  # fmt: skip
                model_page.goto(model_url)
                model_page.wait_for_selector("#verdicts[data-count]")
                shot = args.out / f"model-{elapsed():06.1f}s-{milestone.replace(' ', '-')}.png"
                model_page.screenshot(path=shot, full_page=True)
            time.sleep(max(0.0, args.every - (time.monotonic() - tick)))
        browser.close()
    first = timeline.seen.get(FIRST)
    for milestone in (FIRST, WARNING, STALE, RETRAIN):
        at = timeline.seen.get(milestone)
        if at is None:
            print(f"{milestone}: not seen")
            continue
        since = f"; {(at - first) / 1000:.0f}s after the first verdict" if first else ""
        print(f"{milestone}: {(at - start_ms) / 1000:.0f}s after the script started{since}")
    return 0 if timeline.done else 1


if __name__ == "__main__":
    sys.exit(main())
