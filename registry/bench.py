"""`runway registry-bench`: how long impact and lineage take over a seed-sized graph.

A layered random DAG (seeded, so runs compare): nodes = edges / 10 (the seed's year 3 has 1,500
models and 20,000 edges), six levels, every edge from a lower level to a higher one. Times are
the store's full answer (recursive query + breadth-first walk), as the API runs it.
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

import psycopg

from registry.records import DependencyIn
from registry.store import Store, make_engine

LEVELS = 6


def generate(edges: int, seed: int = 7) -> list[DependencyIn]:
    rng = random.Random(seed)
    n = max(60, edges // 10)
    level = {f"m{i:05d}": i * LEVELS // n for i in range(n)}
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
        store.dispose()
    backend = url.split(":", 1)[0]
    return (
        f"{backend}: {total} edges, {len(nodes)} nodes, {queries} queries each "
        f"(mean {statistics.mean(reached):.0f} nodes downstream)\n"
        f"  impact : {_ms(impact_ms)}\n  lineage: {_ms(lineage_ms)}"
    )
