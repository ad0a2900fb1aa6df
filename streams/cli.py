"""The `runway` command: the Faust app's own CLI plus Runway's subcommands.

`runway worker` is Faust's worker; the product's commands (`stack`, `topics`, `api`,
`registry-agent`, `retrain-agent`, `autoscale`, `lag`, ...) and the tools' (`generate`, `demo`,
`bench`, `bench-isolation`, `schemas`, from `tools/`) are app commands registered here: the top
of the layering, the one module that may import both the product and the tools.
"""

from __future__ import annotations

import faust
from faust.cli.faust import cli  # Faust's command group, its built-in commands registered

from autoscale.cli import register as register_autoscale
from config.settings import load_settings
from registry.cli import register as register_registry
from registry.recovery_cli import register as register_recovery
from retrain.cli import register as register_retrain
from stack.commands import register as register_stack
from streams.app import create_app
from streams.backtest_cli import register as register_backtest
from streams.state_snapshot_cli import register as register_state_snapshots
from streams.worker import build_worker
from tools.bench import register as register_bench
from tools.bench_detection import register as register_bench_detection
from tools.bench_recovery_cli import register as register_bench_recovery
from tools.demo import register as register_demo
from tools.dr_drill import register as register_dr_drill
from tools.generate_cli import register as register_generate
from tools.isolation_cli import register as register_bench_isolation
from tools.schema_docs import register as register_schemas

HELP = """Runway: catch stale ML models in production.

Joins model predictions with their late outcomes (Faust workers, RocksDB), keeps live
per-model metrics in Redis and every joined pair as Parquet, judges each model FRESH, WARNING
or STALE, records the verdicts in the registry and asks the orchestrator to retrain.

Start with `runway stack up`, `runway demo`; `runway models` lists the models and their
state, `runway model ID` shows one. README.md has the rest.
"""


def build() -> faust.App:
    """The app with every command registered, and Runway's help in place of Faust's banner.

    Importing `faust.cli.faust` above registers Faust's built-in commands before Runway's, so
    Runway's `models` and `model` (registry/cli.py) replace Faust's (which list its record
    classes) instead of being replaced by them when `app.main()` imports that module.
    """
    settings = load_settings()
    app = create_app(settings)
    build_worker(app, settings)
    register_stack(app, settings)
    register_generate(app, settings)
    register_demo(app, settings)
    register_bench(app, settings)
    register_bench_detection(app, settings)
    register_schemas(app, settings)
    register_registry(app, settings)
    register_recovery(app, settings)
    register_autoscale(app, settings)
    register_retrain(app, settings)
    register_backtest(app, settings)
    register_bench_isolation(app, settings)
    register_bench_recovery(app, settings)
    register_dr_drill(app, settings)
    register_state_snapshots(app, settings)
    cli.help = HELP
    return app


def main() -> None:
    build().main()
