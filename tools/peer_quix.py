"""The benchmark's peer: the join of predictions and outcomes written as a Quix Streams app.

`runway bench --peer quix` runs this file as a subprocess with the interpreter of its own
virtualenv (`.venv-peer/`, made by `tools/bench_peer.py`): quixstreams pins pydantic and
pydantic-settings below the versions the project uses, so it cannot share `.venv`. The file is
therefore standalone: the standard library and quixstreams only, and quixstreams is imported
inside `main` so the pure join below is unit-tested from the project's own venv.

What it does, as a Quix user would write it (Quix defaults unless stated):

- two input topics, `predictions` and `outcomes`, keyed by model_id, values JSON (one event or
  an array of events of one model); each side's records are expanded per event
  (`apply(expand=True)`), each event tagged with its side, and the two streams concatenated
  (`concat`), which gives them one state store (Quix aligns the two topics by timestamp, as it
  does for its own joins);
- one stateful `apply` does the join. Quix scopes `State` by the message key, here the model id,
  and the pair's key inside it is the prediction id: a prediction waits in RocksDB until its
  outcome comes, an outcome that comes first waits for its prediction, a joined pair leaves a
  small marker so duplicates are not joined twice; each entry carries an event-time TTL (Quix's
  per-write `ttl=`, with its expiry index and changelog tombstones) of the same lengths as the
  worker's label TTL, early-outcome TTL and joined-pair retention;
- joined records (the prediction's fields plus `label`, `outcome_timestamp`, `label_delay_ms`)
  go to an output topic with the model id as key (`to_topic`);
- RocksDB state with its changelog topic, the default processing guarantee (at-least-once),
  offsets committed every `--commit-interval` seconds (the bench passes the worker's
  `checkpoint_interval_ms`).

Why not Quix's `join_interval` or `join_asof`: both join on the message key, here the model id,
so an outcome would meet every prediction of its model in the interval, not its own. Making the
prediction id the key takes a `group_by` per event: a repartition topic carrying one message
per event (100 times the records of the input), a produce and consume more per event, and the
join would still emit a left record at once without waiting for its outcome and re-join
duplicates. A stateful `apply` keyed by prediction id under the model key is the same
interval join on the already co-partitioned stream, without the repartition.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, Protocol

PREDICTION, OUTCOME = "p", "o"
# State values: [PENDING, prediction], [EARLY, outcome] or [JOINED].
PENDING, EARLY, JOINED = "P", "E", "J"
KAFKA_CONFIG_ENV = "RUNWAY_PEER_KAFKA_CONFIG"  # librdkafka settings as JSON (secrets stay off argv)


class State(Protocol):
    """What the join needs of Quix's `State` (get, and set with an event-time TTL)."""

    def get(self, key: Any, default: Any = None) -> Any: ...
    def set(self, key: Any, value: Any, ttl: timedelta | None = None) -> None: ...


class Ttls:
    """How long each kind of entry stays, in event time (the worker's settings of the same name)."""

    def __init__(self, label_ttl_ms: int, early_outcome_ttl_ms: int, done_retention_ms: int):
        self.pending = timedelta(milliseconds=label_ttl_ms)
        self.early = timedelta(milliseconds=early_outcome_ttl_ms)
        self.joined = timedelta(milliseconds=label_ttl_ms + done_retention_ms)


def events_of(value: Any) -> list[Any]:
    """A record's events: the array itself, or the single event."""
    return value if isinstance(value, list) else [value]


def tagged(side: str) -> Callable[[Any], list[tuple[str, Any]]]:
    """The expansion of one side's records: each event with its side."""

    def expand(value: Any) -> list[tuple[str, Any]]:
        return [(side, event) for event in events_of(value)]

    return expand


def joined_record(prediction: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    """The `joined` contract: the prediction's fields plus the outcome's label and times."""
    return {
        **prediction,
        "label": outcome["label"],
        "outcome_timestamp": outcome["timestamp"],
        "label_delay_ms": outcome["timestamp"] - prediction["timestamp"],
    }


def join_event(side: str, event: dict[str, Any], state: State, ttls: Ttls) -> list[dict[str, Any]]:
    """Apply one event to its pair's state; the joined records it completes (0 or 1).

    The first prediction and the first outcome of a pair make it; any later event of a pair
    (a duplicate, or an outcome after the pair is joined) changes nothing.
    """
    pid = event["prediction_id"]
    held = state.get(pid)
    if side == PREDICTION:
        if held is None:
            state.set(pid, [PENDING, event], ttl=ttls.pending)
        elif held[0] == EARLY:
            state.set(pid, [JOINED], ttl=ttls.joined)
            return [joined_record(event, held[1])]
        return []
    if held is None:
        state.set(pid, [EARLY, event], ttl=ttls.early)
    elif held[0] == PENDING:
        state.set(pid, [JOINED], ttl=ttls.joined)
        return [joined_record(held[1], event)]
    return []


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", required=True, help="Input topic of predictions.")
    parser.add_argument("--outcomes", required=True, help="Input topic of outcomes.")
    parser.add_argument("--output", required=True, help="Output topic of joined records.")
    parser.add_argument("--group", required=True, help="Consumer group (and state's name).")
    parser.add_argument("--state-dir", required=True, help="Quix's state directory.")
    parser.add_argument("--commit-interval", type=float, default=1.0, help="Seconds.")
    parser.add_argument("--partitions", type=int, default=16, help="Of the output topic.")
    parser.add_argument("--replication-factor", type=int, default=1)
    parser.add_argument("--label-ttl-ms", type=int, default=7 * 86_400_000)
    parser.add_argument("--early-outcome-ttl-ms", type=int, default=7 * 86_400_000)
    parser.add_argument("--done-retention-ms", type=int, default=7 * 86_400_000)
    return parser.parse_args(list(argv) if argv is not None else None)


def main(argv: Iterable[str] | None = None) -> None:
    from quixstreams import Application
    from quixstreams.kafka.configuration import ConnectionConfig
    from quixstreams.models.topics import TopicConfig

    args = parse_args(argv)
    kafka = json.loads(os.environ.get(KAFKA_CONFIG_ENV, '{"bootstrap.servers": "127.0.0.1:9092"}'))
    app = Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(kafka),
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    predictions = app.topic(args.predictions, key_deserializer="str", value_deserializer="json")
    outcomes = app.topic(args.outcomes, key_deserializer="str", value_deserializer="json")
    output = app.topic(
        args.output,
        key_serializer="str",
        value_serializer="json",
        config=TopicConfig(
            num_partitions=args.partitions, replication_factor=args.replication_factor
        ),
    )
    ttls = Ttls(args.label_ttl_ms, args.early_outcome_ttl_ms, args.done_retention_ms)

    def join(item: tuple[str, dict[str, Any]], state: State) -> list[dict[str, Any]]:
        return join_event(item[0], item[1], state, ttls)

    left = app.dataframe(predictions).apply(tagged(PREDICTION), expand=True)
    right = app.dataframe(outcomes).apply(tagged(OUTCOME), expand=True)
    left.concat(right).apply(join, stateful=True, expand=True).to_topic(output)
    logging.getLogger(__name__).warning("peer quix: group %s starting", args.group)
    app.run()


if __name__ == "__main__":
    main(sys.argv[1:])
