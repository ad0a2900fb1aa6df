"""The `runway` command: the Faust app's own CLI plus Runway's subcommands.

`runway worker` is Faust's worker; `stack`, `topics`, `generate`, `bench` and `demo` are app
commands registered here, the one place where the command line meets the wiring.
"""

from __future__ import annotations

from autoscale.cli import register as register_autoscale
from config.settings import load_settings
from registry.cli import register as register_registry
from retrain.cli import register as register_retrain
from retrain.isolation_cli import register as register_bench_isolation
from stack.commands import register as register_stack
from streams.app import create_app
from streams.bench import register as register_bench
from streams.demo import register as register_demo
from streams.generate_cli import register as register_generate
from streams.schema_docs import register as register_schemas
from streams.worker import build_worker


def main() -> None:
    settings = load_settings()
    app = create_app(settings)
    build_worker(app, settings)
    register_stack(app, settings)
    register_generate(app, settings)
    register_demo(app, settings)
    register_bench(app, settings)
    register_schemas(app, settings)
    register_registry(app, settings)
    register_autoscale(app, settings)
    register_retrain(app, settings)
    register_bench_isolation(app, settings)
    app.main()
