"""The `runway` command: the Faust app's own CLI plus Runway's subcommands.

`runway worker` is Faust's worker; `stack`, `topics`, `generate`, `bench` and `demo` are app
commands registered here, the one place where the command line meets the wiring.
"""

from __future__ import annotations

from config.settings import load_settings
from streams.app import create_app


def main() -> None:
    settings = load_settings()
    app = create_app(settings)
    from stack.commands import register as register_stack

    register_stack(app, settings)
    try:
        from streams.commands import register as register_streams
    except ImportError:  # pragma: no cover - during bootstrap of the project only
        pass
    else:
        register_streams(app, settings)
    app.main()
