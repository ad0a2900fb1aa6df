"""The worker's garbage-collector pace: the youngest generation's threshold, nothing else."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams import collector


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_the_youngest_generation_is_collected_at_the_given_pace() -> None:
    gc.set_threshold(700, 10, 10)
    collector.pace(50_000)
    assert gc.get_threshold() == (50_000, 10, 10)


def test_zero_keeps_cpythons_pace() -> None:
    gc.set_threshold(700, 10, 10)
    collector.pace(0)
    assert gc.get_threshold() == (700, 10, 10)
