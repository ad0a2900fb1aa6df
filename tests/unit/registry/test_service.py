"""The registry service with an in-memory store and cache: what one edge's write rewrites."""

from __future__ import annotations

import random
from typing import Any

import orjson

from registry import graph
from registry.bench import generate
from registry.graph import Edge, Graph
from registry.records import DependencyIn
from registry.service import Registry, impact_doc, lineage_doc, trim


class EdgeStore:
    """The part of `Store` an edge's write uses: upserts keyed by (upstream, downstream)."""

    def __init__(self, deps: list[DependencyIn]) -> None:
        self.rows = {(d.upstream, d.downstream): self._edge(d) for d in deps}

    @staticmethod
    def _edge(d: DependencyIn) -> Edge:
        return Edge(d.upstream, d.downstream, d.kind, d.downstream_kind)

    def add_dependency(self, dep: DependencyIn) -> Edge | None:
        previous = self.rows.get((dep.upstream, dep.downstream))
        self.rows[(dep.upstream, dep.downstream)] = self._edge(dep)
        return previous

    def edges(self) -> list[Edge]:
        return list(self.rows.values())


class Written:
    """A cache that keeps what it is given, as the JSON that Redis would hold."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str | None], dict[str, Any]] = {}

    def put_many(self, items: Any, computed_at: int) -> int:
        batch = list(items)
        self.docs.update({(kind, name): orjson.loads(orjson.dumps(v)) for kind, name, v in batch})
        return len(batch)


def registry(deps: list[DependencyIn]) -> tuple[Registry, Written]:
    cache = Written()
    return Registry(EdgeStore(deps), cache, ["1h"], clock=lambda: 0), cache  # type: ignore[arg-type]


def oracle(before: list[Edge], after: list[Edge]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every node's answers walked on both graphs; the new answers of those that differ."""
    old, new = Graph(before), Graph(after)
    changed: dict[tuple[str, str], dict[str, Any]] = {}
    for n in graph.nodes(after):
        if old.walk_down(n) != new.walk_down(n):
            changed[("impact", n)] = impact_doc(n, new.walk_down(n))
        if old.walk_up(n) != new.walk_up(n):
            changed[("lineage", n)] = lineage_doc(n, new.walk_up(n))
    return changed


def edges_of(deps: list[DependencyIn]) -> list[Edge]:
    return [Edge(d.upstream, d.downstream) for d in deps]


def test_one_edge_rewrites_exactly_the_answers_it_changes() -> None:
    deps = generate(2000)  # the bench's layered graph: 200 nodes, six levels
    g = Graph(edges_of(deps))
    leaf = "m00199"  # last level
    ancestors = [r.node for r in g.walk_up(leaf).reached]
    picks = [
        (leaf, "m00000"),  # a back-edge closing a cycle through a root
        (leaf, random.Random(3).choice(ancestors)),  # a back-edge to some ancestor
        ("m00001", "m00150"),  # a forward edge (level 0 to 4)
    ]
    existing = {(d.upstream, d.downstream) for d in deps}
    for u, d in picks:
        assert (u, d) not in existing
        reg, cache = registry(deps)
        reg.add_dependency(DependencyIn(upstream=u, downstream=d))
        expected = oracle(edges_of(deps), [*edges_of(deps), Edge(u, d)])
        assert cache.docs.keys() == expected.keys(), (u, d)
        assert cache.docs == expected
        assert len(expected) > 0


def test_the_same_edge_again_rewrites_nothing_and_a_new_kind_rewrites_around_it() -> None:
    deps = [DependencyIn(upstream="a", downstream="b"), DependencyIn(upstream="b", downstream="c")]
    reg, cache = registry(deps)
    assert reg.add_dependency(deps[0]) == graph.Affected() and cache.docs == {}
    reg.add_dependency(DependencyIn(upstream="b", downstream="c", downstream_kind="feature"))
    assert sorted(cache.docs) == [
        ("impact", "a"), ("impact", "b"), ("lineage", "c"),
    ]  # fmt: skip
    assert cache.docs[("impact", "a")]["impacted"] == ["b"]  # c is a feature now


def test_trim_equals_walking_with_the_smaller_bounds() -> None:
    rng = random.Random(4)
    for _ in range(300):
        names = [f"n{i}" for i in range(rng.randint(1, 12))]
        kinds = ["model", "feature"]
        g = Graph(
            [
                Edge(rng.choice(names), rng.choice(names), "model", rng.choice(kinds))
                for _ in range(rng.randint(0, 30))
            ]
        )
        start = rng.choice(names)
        full = impact_doc(start, g.walk_down(start, depth=6, limit=8))
        depth, limit = rng.randint(1, 6), rng.randint(1, 8)
        assert trim(full, "downstream", depth, limit) == impact_doc(
            start, g.walk_down(start, depth, limit)
        )
        up = lineage_doc(start, g.walk_up(start, depth=6, limit=8))
        assert trim(up, "upstream", depth, limit) == lineage_doc(
            start, g.walk_up(start, depth, limit)
        )
