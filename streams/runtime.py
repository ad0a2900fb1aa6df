"""The runtime adapter: the one module that touches Faust's or aiokafka's internals.

Everything else gets a small typed interface (`Runtime`): the producer, commits, the RocksDB
handle of a table partition, earliest and end offsets, rebalance state, a read of an offset
range outside the group, seeks, and the input records themselves, fetch by fetch (`Feed`).

How records reach the processors: Faust's consumer still owns the group (membership,
assignment, table recovery, standby replicas), but the records of the processors' input topics
never enter Faust's streams. `FeedingConsumer._getmany` takes them from each fetch, whole, into
the processor's `Feed`, and hands Faust only the rest (changelogs). That removes, at the root,
the paths where Faust drops records the consumer had already moved past (docs/faust.md), and it
lets a processor apply a fetch's records in one go instead of paying Faust's per-event `async
for`. Offsets are committed by the checkpoints, from the state's own marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Set
from typing import Any

import faust
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from faust.tables import recovery as faust_recovery
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from agents.continuity import RawRecord
from streams.backfill import read_range
from streams.feed import Feed, Partition
from tables.standby import apply_changelog

log = logging.getLogger(__name__)

EXIT_FATAL = 70  # EX_SOFTWARE: the worker stopped itself; its replacement recovers


class FeedingConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer; fetched records of fed topics go to their `Feed`, whole."""

    feeds: Mapping[str, Feed] = {}
    # (tp, records) -> True when it applied them itself: a standby's changelog, or an active's
    # during its restore (tables.standby)
    changelog: Callable[[Any, list[Any]], bool] | None = None
    fetches = 0  # calls of `_getmany` (the watchdog tells a busy fetch loop from a stalled one)
    last_asked: Set[Any] = frozenset()  # input partitions (TPs) of the last fetch

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        type(self).fetches += 1
        feeds = self.feeds
        if not feeds or active_partitions is None:
            return self._standbys_applied(await super()._getmany(active_partitions, timeout))
        held: set[Any] = set()
        for feed in set(feeds.values()):
            held |= feed.held()
        ask = {tp for tp in active_partitions if (tp.topic, tp.partition) not in held}
        if not ask:  # aiokafka reads an empty set as "every partition": wait for room instead
            for feed in set(feeds.values()):
                if feed.held():
                    await feed.wait_room(min(timeout, 0.5))
                    break
            return {}
        started = {id(feed): feed.started() for feed in feeds.values()}
        type(self).last_asked = ask  # kept as is: read only by the watchdog's warning
        records = await super()._getmany(ask, timeout)
        rest: dict[Any, Any] = {}
        for tp, batch in records.items():
            target = feeds.get(tp.topic)
            if target is None:
                rest[tp] = batch
            elif not target.put(Partition(tp.topic, tp.partition), batch, started[id(target)]):
                log.info(
                    "feed: %s[%s] offsets %s..%s refused (read from a position a reset "
                    "abandoned; the seek that goes with the reset reads them again)",
                    tp.topic,
                    tp.partition,
                    batch[0].offset,
                    batch[-1].offset,
                )
        return self._standbys_applied(rest)

    def _standbys_applied(self, records: Mapping[Any, Any]) -> Mapping[Any, Any]:
        """The fetch less the changelog records applied here, in bulk."""
        apply = self.changelog
        if apply is None or not records:
            return records
        return {tp: batch for tp, batch in records.items() if not apply(tp, batch)}


async def _seek_offsets_from_zero(
    self: Any, consumer: Any, tps: set[TP], offsets: Mapping[TP, int], title: str
) -> None:
    """Faust's `Recovery._seek_offsets`, with every offset below 0 read as 0.

    Faust maps only -1 (nothing read yet) to 0; a standby's offset computed one lower still
    reached aiokafka's seek, which refused it (`ValueError: Offset must be a positive integer`)
    and the worker died at start: a demo restarted on a stack holding its changelogs lost a
    worker once in three restarts. And a standby partition assigned after the offsets were
    built (a second rebalance during recovery) keeps the None that `Recovery._add` gives an
    offset not known yet: read as 0 too, the changelog from its start, as for -1.
    """
    await consumer.seek_wait({tp: max(offsets[tp] or 0, 0) for tp in tps})


def patch_faust() -> None:
    """Faust's faulty methods replaced by ours (docs/faust.md); at wiring, not at import."""
    faust_recovery.Recovery._seek_offsets = _seek_offsets_from_zero  # type: ignore[method-assign]


class Runtime:
    """What the processors, sinks and the watchdog may ask of the Faust app, typed and small."""

    def __init__(
        self,
        app: faust.App,
        kafka: Mapping[str, Any],
        *,
        bulk_standby: bool = False,
        bulk_restore: bool = False,
    ) -> None:
        patch_faust()
        self._app = app
        self._kafka = kafka  # config.connections.kafka_options: servers and security
        self._feeds: dict[str, Feed] = {}
        self._rebalance_began: float | None = None
        self._handlers: list[Callable[..., Awaitable[None]]] = []
        # This app's consumer class, built before Faust builds the consumer: it feeds this
        # runtime's feeds (one dict, filled by `feed`), not those of another app in the process.
        self._consumer_class: type[FeedingConsumer] = type(
            "FeedingConsumer",
            (FeedingConsumer,),
            {
                "feeds": self._feeds,
                "changelog": (
                    staticmethod(self._apply_changelog) if bulk_standby or bulk_restore else None
                ),
            },
        )
        self._bulk = {"standby": bulk_standby, "restore": bulk_restore}
        self._bulk_tps: set[Any] = set()  # logged once each
        app.transport.Consumer = self._consumer_class  # type: ignore[misc]

    # -- records -------------------------------------------------------------------------
    def feed(self, topics: Iterable[str], max_records: int, max_bytes: int | None = None) -> Feed:
        """A feed of `topics` (subscribed by the group through Faust's topic registry)."""
        feed = Feed(topics, max_records, max_bytes)
        for topic in feed.topics:
            self._feeds[topic] = feed
        self._app.topics.add(
            self._app.topic(
                *sorted(feed.topics),
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                acks=False,  # offsets are committed by checkpoints, not by Faust's acks
            )
        )
        return feed

    def read_range(
        self, topic: str, partition: int, start: int, end: int
    ) -> AsyncIterator[RawRecord]:
        """Records [start, end) of a partition, read with a consumer outside the group."""
        return read_range(self._kafka, topic, partition, start, end)

    async def seek(
        self, offsets: Mapping[tuple[str, int], int], *, unless_revoked: bool = False
    ) -> None:
        """Move the group consumer's position; queued records of those partitions are dropped.

        The seek runs in the consumer's own thread: one from this loop raced aiokafka's
        fetcher (KeyError in `fetched_records`). `unless_revoked`: a partition no longer
        assigned (another rebalance came first) is not an error; that rebalance seeks again.
        """
        if not offsets:
            return
        self.forget(offsets, offsets)
        consumer: Any = self._app.consumer
        try:
            await consumer.seek_wait({TP(t, p): o for (t, p), o in offsets.items()})
        except (IllegalStateError, AssertionError) as exc:
            if not unless_revoked:
                raise
            log.info("seek skipped, partitions revoked meanwhile: %r", exc)
        self.forget(offsets, offsets)

    def forget(
        self,
        tps: Iterable[tuple[str, int]],
        positions: Mapping[tuple[str, int], int] | None = None,
    ) -> None:
        """Drop queued records of partitions about to be read again from `positions` (or,
        without one, revoked): a fetch in flight keeps only what starts at the position."""
        by_feed: dict[int, tuple[Feed, list[Partition]]] = {}
        for topic, partition in tps:
            feed = self._feeds.get(topic)
            if feed is not None:
                by_feed.setdefault(id(feed), (feed, []))[1].append(Partition(topic, partition))
        named = {Partition(t, p): o for (t, p), o in (positions or {}).items()}
        for feed, parts in by_feed.values():
            feed.reset(parts, named)

    def fetches(self) -> int:
        """How many fetches the group's consumer has made (whatever they brought)."""
        return self._consumer_class.fetches

    def _apply_changelog(self, tp: Any, batch: list[Any]) -> bool:
        """A standby partition's fetched changelog records, or an active partition's while
        Faust restores it, written in one WriteBatch instead of Faust's per-record recovery
        path (`tables.standby`); False for any other partition (Faust's path, as before).

        Faust's own bookkeeping stays true: its standby (or active) offset moves to the last
        record, so its seeks, lag figures and a later promotion read on from there, and its
        recovery ends when the active offsets reach the highwaters, as after its own apply
        (its loop checks them when its queue has been empty for 5 s).
        """
        recovery: Any = self._app.tables.recovery  # type: ignore[attr-defined]
        if tp in recovery.active_tps:
            if not (self._bulk["restore"] and recovery.in_recovery):
                return False
            offsets, role = recovery.active_offsets, "restore"
        elif tp in recovery.standby_tps:
            if not self._bulk["standby"]:
                return False
            offsets, role = recovery.standby_offsets, "standby"
        else:
            return False
        table = recovery.tp_to_table.get(tp)
        if table is None:
            return False
        db = table.data._db_for_partition(tp.partition)
        after = offsets.get(tp)
        last = apply_changelog(db, ((r.offset, r.key, r.value) for r in batch), after)
        if last is not None:
            offsets[tp] = last
        if (role, tp) not in self._bulk_tps:
            self._bulk_tps.add((role, tp))
            log.info(
                "%s: %s[%s] applied in bulk from offset %s", role, tp.topic, tp.partition, after
            )
        return True

    # -- group -----------------------------------------------------------------------------
    def rebalancing(self) -> bool:
        return bool(self._app.rebalancing)

    def stopping(self) -> bool:
        """The worker began to stop: Faust stops the consumer, then tables, then the producer."""
        return bool(self._app.should_stop)

    def restoring(self) -> bool:
        """Faust is reading changelogs into the state tables (may take minutes: not a stall)."""
        return bool(getattr(self._app, "in_recovery", False))

    @contextlib.asynccontextmanager
    async def kept_in_group(self) -> AsyncIterator[None]:
        """The member's heartbeats while the body runs inside an assignment callback.

        aiokafka stops its heartbeat task before a rejoin and starts it again only once the
        assignment callback has returned (Kafka's Java consumer heartbeats from its own thread
        throughout). Work in the callback that outlasts the session timeout, a partition's
        snapshot download at the seed's loads (minutes), got the member expelled: it joined
        again into another rebalance, and its partitions could move to a member without a copy,
        which downloaded them again in its own callback. The body also counts as consuming, as
        a fetch does, so the max poll interval is not spent on it (the download has timeouts of
        its own); Java's consumer would count it against that interval.
        """
        thread: Any = self._app.consumer._thread  # type: ignore[attr-defined]
        consumer = thread._ensure_consumer()
        interval = float(self._app.conf.broker_heartbeat_interval)
        busy = consumer._subscription.fetch_context()

        async def enter() -> None:
            busy.__enter__()

        async def leave() -> None:
            busy.__exit__(None, None, None)

        async def heartbeat() -> None:
            if consumer._coordinator is not None:
                await consumer._coordinator._do_heartbeat()  # it handles the answer's errors

        async def beat() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await thread.call_thread(heartbeat)
                except Exception:  # noqa: BLE001 - the next beat tries again, as aiokafka's does
                    log.warning("heartbeat during the assignment's work failed", exc_info=True)

        await thread.call_thread(enter)
        beating = asyncio.ensure_future(beat())
        try:
            yield
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
            await thread.call_thread(leave)

    def rebalance_age(self, now: float) -> float | None:
        """Seconds since the rebalance under way began (its revocation), None outside one."""
        recovery: Any = self._app.tables.recovery  # type: ignore[attr-defined]
        if not self._app.rebalancing and recovery.completed.is_set():
            return None
        began = self._rebalance_began
        return 0.0 if began is None else max(now - began, 0.0)

    def assignment(self) -> set[tuple[str, int]]:
        return {(tp.topic, tp.partition) for tp in self._app.consumer.assignment()}

    async def commit(self, offsets: Mapping[tuple[str, int], int]) -> bool:
        """Commit the group's offsets; False when the group has rebalanced meanwhile.

        Not Faust's `Consumer._commit`: it *crashes the consumer thread* on any error other
        than a rebalance, after which every fetch and commit awaits a dead thread forever.
        Errors reach the caller here, who retries the retriable ones.
        """
        if not offsets:
            return True
        thread: Any = self._app.consumer._thread  # type: ignore[attr-defined]
        consumer = thread._ensure_consumer()

        async def commit() -> bool:
            # Checked in the consumer's own thread, right before the request is built: a
            # commit sent with the old generation after this member has rejoined gets
            # ILLEGAL_GENERATION, and aiokafka then resets the *new* generation and member id
            # mid-join, so the member syncs as generation -1 and rejoins again, forever (the
            # group never settled while commits from revocation checkpoints were in flight).
            if not _stable(consumer):
                return False  # the next owner commits the marker at its assignment
            assigned = consumer.assignment()
            wanted = {
                TopicPartition(t, p): OffsetAndMetadata(o, "")
                for (t, p), o in offsets.items()
                if TopicPartition(t, p) in assigned
            }
            if not wanted:
                return False
            try:
                await consumer.commit(wanted)
            except CommitFailedError:
                return False  # rebalanced: the marker stays the truth; the owner re-commits
            return True

        return bool(await thread.call_thread(commit))

    async def earliest(self, topic: str, partition: int) -> int:
        tp = TP(topic, partition)
        return int((await self._app.consumer.earliest_offsets(tp)).get(tp) or 0)

    async def highwaters(self, tps: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        wanted = [TP(t, p) for t, p in tps]
        if not wanted:
            return {}
        ends = await self._app.consumer.highwaters(*wanted)
        return {(tp.topic, tp.partition): int(o or 0) for tp, o in ends.items()}

    def describe(self, topic: str, partition: int) -> str:
        """Where the consumer stands on a partition, for the watchdog's warning (read-only)."""
        facts = [
            f"asked in the last fetch: {TP(topic, partition) in self._consumer_class.last_asked}"
        ]
        try:
            consumer: Any = self._app.consumer._thread._ensure_consumer()  # type: ignore[attr-defined]
            tp = TopicPartition(topic, partition)
            assignment = consumer._subscription.subscription.assignment
            state = assignment.state_value(tp) if assignment is not None else None
            facts.append(f"position {None if state is None else state._position}")
            facts.append(f"paused by aiokafka: {tp in consumer.paused()}")
            faust_paused = self._app.consumer._paused_partitions  # type: ignore[attr-defined]
            facts.append(f"paused by Faust: {TP(topic, partition) in faust_paused}")
            facts.append(f"flow active: {self._app.consumer.flow_active}")  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - a diagnostic must never fail the watchdog
            facts.append(f"consumer state unreadable ({exc!r})")
        return "; ".join(facts)

    def highwater(self, topic: str, partition: int) -> int | None:
        """The end offset last seen in a fetch response (no request; None before the first)."""
        try:
            value = self._app.consumer.highwater(TP(topic, partition))
        except (KeyError, AssertionError, IllegalStateError):
            return None
        return None if value is None else int(value)

    # -- state and output ------------------------------------------------------------------
    def producer(self) -> Any:
        """The started aiokafka producer under Faust's (one producer for state and outputs)."""
        return self._app.producer._producer  # type: ignore[attr-defined]

    @staticmethod
    def db_for(table: Any) -> Callable[[int], Any]:
        """The rocksdict DB of a table partition (Faust's own handle, opened on first use)."""
        return table.data._db_for_partition  # type: ignore[no-any-return]

    @staticmethod
    def changelog_topic(table: Any) -> str:
        return str(table.changelog_topic.get_topic_name())

    def on_assigned(self, handler: Callable[[set[tuple[str, int]]], Awaitable[None]]) -> None:
        """`handler(assignment)` after recovery, before the streams resume and Faust seeks
        every partition to its committed offset.

        Not when another rebalance began meanwhile: Faust's recovery swallows the RebalanceAgain
        that interrupts its wait for a restore's end, logs "Recovery complete" and signals the
        completion anyway, while the new assignment's partitions are only partly restored (its
        next round restores the rest). Handed over then, the join ran on a partial state while
        the restore went on writing under it, and counted replayed pairs as duplicates. That
        round's own completion follows; until then the processors own nothing (eager
        revocation) and drop what they are fed, uncommitted.
        """

        async def complete(sender: Any, **kwargs: Any) -> None:
            recovery: Any = self._app.tables.recovery  # type: ignore[attr-defined]
            if recovery.signal_recovery_start.is_set():
                log.info("recovery ended by a newer rebalance: assignment left to that one")
                return
            await handler(self.assignment())
            self._rebalance_began = None

        self._app.on_rebalance_complete.connect(complete)  # type: ignore[arg-type]
        self._handlers.append(complete)  # the signal holds a weak reference

    def on_revoked(self, handler: Callable[[set[tuple[str, int]]], Awaitable[None]]) -> None:
        async def revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
            if self._rebalance_began is None:
                self._rebalance_began = time.monotonic()
            await handler({(tp.topic, tp.partition) for tp in revoked})

        self._app.on_partitions_revoked.connect(revoked)  # type: ignore[arg-type]
        self._handlers.append(revoked)

    @staticmethod
    def fatal(message: str) -> None:
        """Stop the worker now, with one clear line; its replacement recovers from the state.

        An immediate exit, not a graceful stop: a graceful stop would checkpoint again on
        revocation and meet the same error. Nothing is lost (a SIGKILL at any instant is safe).
        """
        log.critical("worker stopping: %s", message)
        logging.shutdown()
        os._exit(EXIT_FATAL)


def _stable(consumer: Any) -> bool:
    """The member holds a settled generation: no rejoin requested or under way."""
    coordinator = consumer._coordinator
    if coordinator is None:
        return False
    return not (
        consumer._subscription.reassignment_in_progress or coordinator._rejoin_needed_fut.done()
    )


def is_retriable(exc: BaseException) -> bool:
    """A Kafka error worth retrying: the broker may be away for a while (a restart, a move)."""
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or type(exc).__name__ in {
            "KafkaTimeoutError",
            "KafkaConnectionError",
            "RequestTimedOutError",
            "NodeNotReadyError",
        }
    return isinstance(exc, (ConnectionError, TimeoutError))
