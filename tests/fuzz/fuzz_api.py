"""`make fuzz-api`: Schemathesis (`--checks all`) against a real `runway api` and its own
OpenAPI document, on the local stack (Redis; Kafka only for /health).

The API runs as a child process on a free port, with a scratch registry (a temporary SQLite
file, or with `--dsn postgresql://...` a scratch database on that server, dropped afterwards),
its own Redis key prefix (deleted afterwards) and a random write token that Schemathesis sends.
`--read-tokens` also configures a read token, so that reads need a token too. Arguments after
`--` go to `schemathesis run` (e.g. `-- --seed 1`). The exit code is Schemathesis's.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from redis import Redis

from config.settings import Settings
from registry.bench import scratch_database
from stack.processes import RunwayProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
HOOKS = "tests.fuzz.schemathesis_hooks"
START_TIMEOUT_S = 60.0


@contextmanager
def registry_dsn(dsn: str | None, tmp: Path) -> Iterator[str]:
    if dsn is None:
        yield f"sqlite:///{tmp / 'registry.sqlite3'}"
        return
    with scratch_database(dsn) as scratch:
        yield scratch


def wait_healthy(api: RunwayProcess, deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if not api.alive():
            return False
        if api.health() is not None:
            return True
        time.sleep(0.2)
    return False


def drop_prefix(redis_url: str, prefix: str) -> int:
    redis = Redis.from_url(redis_url)
    keys = list(redis.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        redis.delete(*keys)
    return len(keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="PostgreSQL server for a scratch registry (default SQLite)")
    parser.add_argument("--read-tokens", action="store_true", help="reads need a token too")
    parser.add_argument("schemathesis_args", nargs="*", help="passed to `schemathesis run`")
    args = parser.parse_args(argv)

    token = secrets.token_urlsafe(24)  # this run's only: Schemathesis prints it as [Filtered]
    prefix = f"fuzz-{secrets.token_hex(4)}"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="runway-fuzz-") as tmp_name:
        tmp = Path(tmp_name)
        with registry_dsn(args.dsn, tmp) as dsn:
            env = {
                **os.environ,
                "RUNWAY_API_TOKEN": token,
                "RUNWAY_API_PORT": str(port),
                "RUNWAY_REGISTRY_DSN": dsn,
                "RUNWAY_REDIS_KEY_PREFIX": prefix,
            }
            if args.read_tokens:
                env["RUNWAY_API_TOKENS"] = json.dumps({secrets.token_urlsafe(24): "read"})
            log = tmp / "api.log"
            api = RunwayProcess("runway api", ["api"], env, log, f"http://127.0.0.1:{port}/health")
            api.start()
            try:
                if not wait_healthy(api, START_TIMEOUT_S):
                    print(f"runway api did not come up:\n{api.log_tail()}", file=sys.stderr)
                    return 1
                command = [
                    shutil.which("schemathesis", path=str(Path(sys.executable).parent))
                    or "schemathesis",
                    "run",
                    f"http://127.0.0.1:{port}/openapi.json",
                    "--checks",
                    "all",
                    "--header",
                    f"Authorization: Bearer {token}",
                    *args.schemathesis_args,
                ]
                run_env = {**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": str(ROOT)}
                # cwd: Schemathesis keeps its example database (.hypothesis) where it runs
                return subprocess.run(command, env=run_env, cwd=tmp, check=False).returncode
            finally:
                api.stop()
                drop_prefix(Settings().redis_url, prefix)


if __name__ == "__main__":
    sys.exit(main())
