"""The drill's traffic: the generator in a process of its own, which dies with the primary region.

Why a process: the model servers and label sources of the primary region die with it, and a
producer whose broker is gone never finishes closing (aiokafka keeps the batches of a known
leader and retries them), so the drill SIGKILLs this process at the kill, as the region's
producers would be. What the primary acknowledged is on disk by then: one line per event when
its record's acknowledgement arrives, `A <monotonic s> <topic kind> <prediction_id>` (the
monotonic clock is the machine's, shared with the drill), and `S <events sent so far>` per
record.

`python -m tools.dr_traffic '<TrafficSpec as JSON>' <ack file> <seed>`, with the primary region's
settings in the environment (RUNWAY_*).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from config.settings import Settings, load_settings
from streams.producer import make_producer
from tools.dr_oracle import EventId, events_of
from tools.traffic import TrafficSpec, generate

INPUTS = ("predictions", "outcomes")


def parse_acks(lines: Iterable[str]) -> tuple[dict[EventId, float], int]:
    """(each event's first acknowledgement time, events sent) from an ack file's lines; a line
    cut short by the SIGKILL is ignored."""
    acks: dict[EventId, float] = {}
    sent = 0
    for line in lines:
        if not line.endswith("\n"):
            continue
        parts = line.split(" ", 3)
        if parts[0] == "S" and len(parts) == 2:
            sent = int(parts[1])
        elif parts[0] == "A" and len(parts) == 4:
            acks.setdefault((parts[2], parts[3].rstrip("\n")), float(parts[1]))
    return acks, sent


def _acked(out: IO[str], ids: Sequence[EventId]) -> Any:
    def done(future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        now = time.monotonic()
        out.write("".join(f"A {now:.6f} {kind} {pid}\n" for kind, pid in ids))

    return done


async def send(settings: Settings, spec: TrafficSpec, acks: Path, seed: int) -> None:
    """Send `spec`'s traffic paced to its rate until the generator ends (or the process dies)."""
    topics = {name: settings.topic(name) for name in INPUTS}
    producer = make_producer(settings)
    await producer.start()
    sent = 0
    start = time.monotonic()
    with acks.open("a", buffering=1) as out:  # line-buffered: each line is on disk when written
        try:
            for record in generate(spec, random.Random(seed)):
                ids = [(record.topic, str(e["prediction_id"])) for e in events_of(record.value)]
                future = await producer.send(topics[record.topic], record.value, key=record.key)
                future.add_done_callback(_acked(out, ids))
                sent += record.events
                out.write(f"S {sent}\n")
                ahead = sent / (spec.rate or 1.0) - (time.monotonic() - start)
                if ahead > 0.005:
                    await asyncio.sleep(ahead)
        finally:
            await producer.stop()


def main() -> None:
    spec = TrafficSpec(**json.loads(sys.argv[1]))
    asyncio.run(send(load_settings(), spec, Path(sys.argv[2]), int(sys.argv[3])))


if __name__ == "__main__":
    main()
