"""RUNWAY_TABLE_STANDBY_REPLICAS reaches Faust (whose own default, 1, it keeps)."""

from __future__ import annotations

import pytest

from config.settings import Settings
from streams.app import create_app


@pytest.mark.parametrize("replicas", [0, 1, 2])
def test_the_setting_is_the_apps_standby_replicas(replicas: int) -> None:
    app = create_app(Settings(table_standby_replicas=replicas))
    assert app.conf.table_standby_replicas == replicas


def test_the_default_is_fausts_own() -> None:
    assert Settings().table_standby_replicas == 1
