"""`runway stack ...` and `runway topics ...` (placeholder, filled in by the stack work)."""

from __future__ import annotations

import faust

from config.settings import Settings


def register(app: faust.App, settings: Settings) -> None:
    del app, settings
