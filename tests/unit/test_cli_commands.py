"""The `runway` command group: Runway's own help, and Runway's `models`/`model` in place of
Faust's (which list Faust's record classes). In-process: `--help` is answered by click alone."""

from __future__ import annotations

from click.testing import CliRunner
from faust.cli.faust import cli

from streams.cli import HELP, build


def test_runway_help_and_commands_replace_fausts() -> None:
    app = build()
    models, model = cli.commands["models"], cli.commands["model"]
    # ours, from registry/cli.py, not faust/cli/models.py and faust/cli/model.py
    assert models.callback.__wrapped__.__module__ == "registry.cli"  # type: ignore[union-attr]
    assert model.callback.__wrapped__.__module__ == "registry.cli"  # type: ignore[union-attr]
    result = CliRunner().invoke(cli, ["--help"], app=app, prog_name="runway")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[2] == "  " + HELP.splitlines()[0]
    assert "Welcome" not in result.output and "faust-streaming.github.io" not in result.output
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line}
    assert {"models", "model", "worker", "stack", "api", "demo"} <= listed
    usage = CliRunner().invoke(cli, ["models", "--help"], app=app, prog_name="runway").output
    assert "The ML models in the registry" in usage and "--state [STALE|WARNING|FRESH]" in usage
    usage = CliRunner().invoke(cli, ["model", "--help"], app=app, prog_name="runway").output
    assert "Usage: runway model [OPTIONS] MODEL_ID" in usage and "--limit" in usage
