"""Run a long-lived command until Ctrl-C or SIGTERM.

Faust's own signal handler stops the app, not a command's loop; the service commands (`runway
registry-agent`, `retrain-agent`, `orchestrator-standin`, `lag --watch`, `autoscale`) end on a
stop event set here, so they can shut down what they started before returning.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


async def until_signalled(work: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `work(stop)`; a stop signal sets `stop` instead of killing the process."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    try:
        await work(stop)
    finally:
        for signum in SIGNALS:
            loop.remove_signal_handler(signum)
