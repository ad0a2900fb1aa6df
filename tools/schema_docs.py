"""`runway schemas`: write the messages' JSON schemas to docs/schemas/ for integrators."""

from __future__ import annotations

from pathlib import Path

import faust
import orjson
from faust.cli import option

from config.settings import Settings
from contracts.schemas import json_schemas
from staleness.events import json_schemas as staleness_json_schemas


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in {**json_schemas(), **staleness_json_schemas()}.items():
        path = directory / f"{name}.schema.json"
        path.write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        written.append(path)
    return written


def register(app: faust.App, settings: Settings) -> None:
    del settings

    @app.command(option("--out", default="docs/schemas", help="Directory to write to."))
    async def schemas(self: faust.cli.AppCommand, out: str) -> None:
        """Write the JSON schemas of prediction, outcome, joined and staleness messages."""
        for path in write_schemas(Path(out)):
            print(path)
