"""Dependency graph traversal: transitive downstream impact and upstream lineage. Pure.

The store hands over the edges reachable from a node (a recursive query) or all of them; the
walk here is a breadth-first search that reports each node once at its shortest depth, so cycles
(which a registry must tolerate, whoever drew them) end the walk instead of looping.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Kind = Literal["model", "feature", "dataset"]
KINDS: tuple[str, ...] = ("model", "feature", "dataset")


@dataclass(frozen=True)
class Edge:
    """`downstream` depends on `upstream`; `kind` is the upstream node's kind."""

    upstream: str
    downstream: str
    kind: str = "model"
    downstream_kind: str = "model"


@dataclass(frozen=True)
class Reached:
    node: str
    kind: str
    depth: int  # 1 = direct neighbour


def _walk(start: str, neighbours: dict[str, list[tuple[str, str]]]) -> list[Reached]:
    seen = {start}
    found: list[Reached] = []
    queue: deque[tuple[str, int]] = deque([(start, 0)])
    while queue:
        node, depth = queue.popleft()
        for nxt, kind in neighbours.get(node, ()):
            if nxt in seen:
                continue
            seen.add(nxt)
            found.append(Reached(nxt, kind, depth + 1))
            queue.append((nxt, depth + 1))
    found.sort(key=lambda r: (r.depth, r.node))
    return found


class Graph:
    """The adjacency, built once and walked many times: warming the cache walks every node,
    and rebuilding it per walk cost 2,000 x 20,000 appends at the seed's size (43 s vs 2 s)."""

    def __init__(self, edges: Iterable[Edge]) -> None:
        self._out: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self._in: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for e in edges:
            self._out[e.upstream].append((e.downstream, e.downstream_kind))
            self._in[e.downstream].append((e.upstream, e.kind))

    def downstream(self, start: str) -> list[Reached]:
        """Everything that depends on `start`, directly or transitively (not `start` itself)."""
        return _walk(start, self._out)

    def upstream(self, start: str) -> list[Reached]:
        """Everything `start` depends on, directly or transitively: its lineage."""
        return _walk(start, self._in)


def downstream(edges: Iterable[Edge], start: str) -> list[Reached]:
    return Graph(edges).downstream(start)


def upstream(edges: Iterable[Edge], start: str) -> list[Reached]:
    return Graph(edges).upstream(start)


def impacted_models(reached: Iterable[Reached]) -> list[str]:
    """The model ids among the reached nodes (features and datasets are not retrained)."""
    return sorted(r.node for r in reached if r.kind == "model")


def nodes(edges: Iterable[Edge]) -> set[str]:
    out: set[str] = set()
    for e in edges:
        out.add(e.upstream)
        out.add(e.downstream)
    return out
