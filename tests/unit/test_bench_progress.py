"""`runway bench`'s progress reading: committed offsets turned into events, and a group the
broker has no coordinator for yet read as no progress (a fresh broker still making its offsets
topic answered the first polls of a run with GroupCoordinatorNotAvailableError)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import GroupCoordinatorNotAvailableError
from aiokafka.structs import OffsetAndMetadata

from config.settings import Settings
from tools.bench import Backlog, committed_events

TP0, TP1 = TopicPartition("t", 0), TopicPartition("t", 1)


class Admin:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers

    async def list_consumer_group_offsets(self, group: str) -> Any:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def backlog() -> Backlog:
    # partition 0: records at offsets 0, 1, 2 of 100, 100 and 50 events; partition 1: one of 7
    return Backlog(
        Settings(),
        events=257,
        offsets={TP0: [0, 1, 2], TP1: [0]},
        cumulative={TP0: [100, 200, 250], TP1: [7]},
    )


def test_committed_offsets_count_the_events_of_the_records_below_them() -> None:
    admin = Admin([{TP0: OffsetAndMetadata(2, ""), TP1: OffsetAndMetadata(-1, "")}])
    assert asyncio.run(committed_events(admin, backlog(), "g")) == 200  # type: ignore[arg-type]


def test_a_group_without_a_coordinator_yet_has_committed_nothing_and_is_asked_again() -> None:
    admin = Admin(
        [
            GroupCoordinatorNotAvailableError("no coordinator yet"),
            {TP0: OffsetAndMetadata(3, ""), TP1: OffsetAndMetadata(1, "")},
        ]
    )
    assert asyncio.run(committed_events(admin, backlog(), "g")) == 0  # type: ignore[arg-type]
    assert asyncio.run(committed_events(admin, backlog(), "g")) == 257  # type: ignore[arg-type]
