"""`runway registry-bench`: how long impact and lineage take over a seed-sized graph.

A layered random DAG (seeded, so runs compare): nodes = edges / 10 (the seed's year 3 has 1,500
models and 20,000 edges), six levels, every edge from a lower level to a higher one. Times are
the store's full answer (recursive query + breadth-first walk), as the API runs it.

Then one edge's write (`Registry.add_dependency`, cache writes counted instead of sent): how many
cached impact and lineage answers it rewrites, their bytes and the CPU it takes, for a back-edge
from the last node to the first (it closes cycles through a root: the worst case) and the
medians of random back-edges (to an ancestor) and forward edges (level to a higher level).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import psycopg
import sqlalchemy as sa

from registry import graph
from registry import schema as t
from registry.records import DependencyIn
from registry.service import Registry
from registry.store import Store, make_engine

LEVELS = 6


def levels(edges: int) -> dict[str, int]:
    n = max(60, edges // 10)
    return {f"m{i:05d}": i * LEVELS // n for i in range(n)}


def generate(edges: int, seed: int = 7) -> list[DependencyIn]:
    rng = random.Random(seed)
    level = levels(edges)
    by_level: list[list[str]] = [[] for _ in range(LEVELS)]
    for node, lv in level.items():
        by_level[lv].append(node)
    out: set[tuple[str, str]] = set()
    while len(out) < edges:
        lo = rng.randrange(LEVELS - 1)
        hi = rng.randrange(lo + 1, LEVELS)
        out.add((rng.choice(by_level[lo]), rng.choice(by_level[hi])))
    return [DependencyIn(upstream=u, downstream=d) for u, d in sorted(out)]


def _ms(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"p50 {q[49]:.2f} ms, p99 {q[98]:.2f} ms, max {max(samples):.2f} ms"


@contextmanager
def scratch_database(dsn: str | None) -> Iterator[str]:
    """A throwaway database: a temporary SQLite file, or a new database on the DSN's PostgreSQL
    server (dropped afterwards), so the bench never writes into a registry in use."""
    if dsn is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        return
    name = f"runway_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_bench(edges: int, queries: int, dsn: str | None) -> str:
    with scratch_database(dsn) as url:
        store = Store(make_engine(url, 10.0))
        store.create_schema()
        deps = generate(edges)
        store.add_dependencies(deps)
        nodes = sorted({d.upstream for d in deps} | {d.downstream for d in deps})
        rng = random.Random(11)
        picks = [rng.choice(nodes) for _ in range(queries)]
        impact_ms, lineage_ms, reached = [], [], []
        for node in picks:
            t0 = time.perf_counter()
            found = store.impact(node)
            t1 = time.perf_counter()
            store.lineage(node)
            t2 = time.perf_counter()
            impact_ms.append((t1 - t0) * 1000)
            lineage_ms.append((t2 - t1) * 1000)
            reached.append(len(found))
        total = len(store.edges())
        writes = write_costs(store, levels(edges))
        store.dispose()
    backend = url.split(":", 1)[0]
    return (
        f"{backend}: {total} edges, {len(nodes)} nodes, {queries} queries each "
        f"(mean {statistics.mean(reached):.0f} nodes downstream)\n"
        f"  impact : {_ms(impact_ms)}\n  lineage: {_ms(lineage_ms)}\n{writes}"
    )


class _Counted:
    """The cache's `put_many`, serialising as it would and counting instead of sending."""

    def __init__(self) -> None:
        self.docs = 0
        self.bytes = 0

    def put_many(self, items: object, computed_at: int) -> int:
        for _kind, _name, value in items:  # type: ignore[attr-defined]
            self.docs += 1
            self.bytes += len(orjson.dumps({**value, "computed_at": computed_at}))
        return self.docs


def _write(store: Store, edge: tuple[str, str]) -> tuple[int, int, float]:
    """Documents, bytes and CPU seconds of one edge's write; the edge is removed again."""
    cache = _Counted()
    registry = Registry(store, cache, [])  # type: ignore[arg-type]
    started = time.process_time()
    registry.add_dependency(DependencyIn(upstream=edge[0], downstream=edge[1]))
    cpu = time.process_time() - started
    d = t.dependencies.c
    with store.write.begin() as conn:
        conn.execute(
            sa.delete(t.dependencies).where(d.upstream == edge[0], d.downstream == edge[1])
        )
    return cache.docs, cache.bytes, cpu


def write_costs(store: Store, level: dict[str, int], samples: int = 10) -> str:
    g = graph.Graph(store.edges())
    names = sorted(level)
    rng = random.Random(13)
    back: list[tuple[str, str]] = []
    forward: list[tuple[str, str]] = []
    while len(back) < samples:
        u = rng.choice(names)
        if ancestors := [r.node for r in g.walk_up(u).reached]:
            back.append((u, rng.choice(ancestors)))
    existing = {(e.upstream, e.downstream) for e in store.edges()}
    while len(forward) < samples:
        u, d = rng.choice(names), rng.choice(names)
        if level[u] < level[d] and (u, d) not in existing:
            forward.append((u, d))
    worst = (names[-1], names[0])
    docs, size, cpu = _write(store, worst)
    lines = [
        f"  one edge's write: {worst[0]} -> {worst[1]} (closes cycles through a root): "
        f"{docs} documents rewritten, {size / 1e6:.1f} MB, {cpu:.2f} s CPU"
    ]
    for what, edges in (("back-edges", back), ("forward edges", forward)):
        runs = [_write(store, e) for e in edges]
        lines.append(
            f"  median of {samples} random {what}: "
            f"{statistics.median(r[0] for r in runs):.0f} documents, "
            f"{statistics.median(r[1] for r in runs) / 1e6:.1f} MB, "
            f"{statistics.median(r[2] for r in runs):.2f} s CPU"
        )
    return "\n".join(lines)
