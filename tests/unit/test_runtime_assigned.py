"""The runtime hands the processors an assignment only when Faust's recovery really ended.

Faust's recovery swallows the RebalanceAgain that interrupts its wait for a restore's end and
signals the completion anyway (found by the static-membership tests' dynamic case: the join ran
on a partly restored partition and counted replayed pairs as duplicates). Checked on a stand-in
of the app: the signal fires with a newer rebalance begun, then again after its own recovery.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import TopicPartition

from streams.runtime import Runtime


class Signal:
    """Faust's `on_rebalance_complete`: `connect(handler)`, `send()`."""

    def __init__(self) -> None:
        self.handlers: list[Any] = []

    def connect(self, handler: Any) -> None:
        self.handlers.append(handler)

    async def send(self) -> None:
        for handler in self.handlers:
            await handler(None)


def stand_in() -> tuple[Any, asyncio.Event]:
    began = asyncio.Event()
    consumer = SimpleNamespace(assignment=lambda: {TopicPartition("in", 1)})
    app = SimpleNamespace(
        transport=SimpleNamespace(),
        tables=SimpleNamespace(recovery=SimpleNamespace(signal_recovery_start=began)),
        on_rebalance_complete=Signal(),
        on_partitions_revoked=Signal(),
        consumer=consumer,
    )
    return app, began


async def test_a_completion_signalled_after_a_newer_rebalance_began_is_not_handed_on() -> None:
    app, began = stand_in()
    runtime = Runtime(app, {})  # type: ignore[arg-type]
    seen: list[set[tuple[str, int]]] = []

    async def assigned(assignment: set[tuple[str, int]]) -> None:
        seen.append(assignment)

    runtime.on_assigned(assigned)
    runtime._rebalance_began = 1.0  # a rebalance under way

    began.set()  # the newer rebalance (Faust's on_rebalance) before the old round's signal
    await app.on_rebalance_complete.send()
    assert seen == []
    assert runtime._rebalance_began == 1.0  # still rebalancing: /health says so

    began.clear()  # the newer round starts (Faust clears it), restores, then signals
    await app.on_rebalance_complete.send()
    assert seen == [{("in", 1)}]
    assert runtime._rebalance_began is None
