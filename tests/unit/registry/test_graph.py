import random

from registry.graph import (
    Affected,
    Edge,
    Graph,
    Reached,
    Walk,
    downstream,
    impacted_models,
    nodes,
    upstream,
)

CHAIN = [
    Edge("raw", "feat", "dataset", "feature"),
    Edge("feat", "m1", "feature"),
    Edge("m1", "m2"),
    Edge("m2", "m3"),
    Edge("m1", "m3"),  # a shortcut: m3 is reported once, at its shortest depth
]


def test_downstream_three_levels_shortest_depth() -> None:
    assert downstream(CHAIN, "m1") == [Reached("m2", "model", 1), Reached("m3", "model", 1)]
    assert downstream(CHAIN, "raw") == [
        Reached("feat", "feature", 1),
        Reached("m1", "model", 2),
        Reached("m2", "model", 3),
        Reached("m3", "model", 3),
    ]
    assert impacted_models(downstream(CHAIN, "raw")) == ["m1", "m2", "m3"]


def test_upstream_lineage_kinds() -> None:
    assert upstream(CHAIN, "m2") == [
        Reached("m1", "model", 1),
        Reached("feat", "feature", 2),
        Reached("raw", "dataset", 3),
    ]


def test_cycles_end_and_exclude_the_start() -> None:
    ring = [Edge("a", "b"), Edge("b", "c"), Edge("c", "a"), Edge("c", "c")]
    assert downstream(ring, "a") == [Reached("b", "model", 1), Reached("c", "model", 2)]
    assert upstream(ring, "a") == [Reached("c", "model", 1), Reached("b", "model", 2)]


def test_unknown_node_and_leaf() -> None:
    assert downstream(CHAIN, "nope") == []
    assert downstream(CHAIN, "m3") == []
    assert nodes(CHAIN) == {"raw", "feat", "m1", "m2", "m3"}


# -- bounded walks --------------------------------------------------------------------------------

FAN = [Edge("r", f"a{i}") for i in range(3)] + [Edge("a0", "b0"), Edge("b0", "c0")]


def test_depth_bound_keeps_the_nearest_and_says_it_cut() -> None:
    g = Graph(FAN)
    assert g.walk_down("r", depth=1) == Walk(
        [Reached("a0", "model", 1), Reached("a1", "model", 1), Reached("a2", "model", 1)], True
    )
    assert g.walk_down("r", depth=2).reached[-1] == Reached("b0", "model", 2)
    assert g.walk_down("r", depth=2).truncated  # c0 is 3 away
    assert g.walk_down("r", depth=3).truncated is False  # everything, nothing beyond
    assert g.walk_down("c0", depth=1) == Walk([], False)


def test_limit_cuts_in_depth_then_node_order() -> None:
    g = Graph(FAN)
    assert g.walk_down("r", limit=2) == Walk(
        [Reached("a0", "model", 1), Reached("a1", "model", 1)], True
    )
    # exactly the limit with nothing further: not truncated; one more node further: truncated
    assert g.walk_down("a0", limit=2) == Walk(
        [Reached("b0", "model", 1), Reached("c0", "model", 2)], False
    )
    assert g.walk_down("r", limit=4).truncated and len(g.walk_down("r", limit=5).reached) == 5
    assert g.walk_down("r", limit=5).truncated is False


def test_a_cycle_does_not_count_as_more() -> None:
    ring = Graph([Edge("a", "b"), Edge("b", "a")])
    assert ring.walk_down("a", depth=1) == Walk([Reached("b", "model", 1)], False)


# -- incremental: which answers one new edge changes ----------------------------------------------


def brute_changed(old: list[Edge], new: Edge, depth: int) -> tuple[set[str], set[str]]:
    """Walk every node before and after: the answers that differ (the oracle)."""
    before, after = Graph(old), Graph([*old, new])
    every = nodes([*old, new])
    big = len(every) + 1
    down = {n for n in every if before.walk_down(n, depth, big) != after.walk_down(n, depth, big)}
    up = {n for n in every if before.walk_up(n, depth, big) != after.walk_up(n, depth, big)}
    return down, up


def test_affected_hand_counted() -> None:
    # chain x -> u, y -> u, y -> d (y already reaches d directly), d -> e
    old = [Edge("x", "u"), Edge("y", "u"), Edge("y", "d"), Edge("d", "e")]
    affected = Graph([*old, Edge("u", "d")]).affected_by(Edge("u", "d"))
    # u gains d, e; x gains d, e; y already has d at 1 and e at 2: unchanged
    assert affected.impact_of == {"u", "x"}
    # d gains u, x (y it had); e gains u, x
    assert affected.lineage_of == {"d", "e"}
    assert (affected.impact_of, affected.lineage_of) == brute_changed(old, Edge("u", "d"), 100)


def test_closing_a_cycle_changes_only_what_it_shortens() -> None:
    old = [Edge("a", "b"), Edge("b", "c"), Edge("r", "a")]
    back = Edge("c", "a")
    affected = Graph([*old, back]).affected_by(back)
    # c now reaches a, b; b reaches a; a and r already reach everything
    assert affected.impact_of == {"c", "b"}
    assert affected.lineage_of == {"a", "b"}  # a gains c and b upstream, b gains c
    assert (affected.impact_of, affected.lineage_of) == brute_changed(old, back, 100)


def test_self_loop_changes_nothing() -> None:
    old = [Edge("a", "b")]
    assert Graph([*old, Edge("b", "b")]).affected_by(Edge("b", "b")) == Affected(set(), set())


def test_affected_matches_the_oracle_on_random_graphs() -> None:
    rng = random.Random(20)
    checked = 0
    for _ in range(3000):
        names = [f"n{i}" for i in range(rng.randint(1, 9))]
        pairs = {(rng.choice(names), rng.choice(names)) for _ in range(rng.randint(0, 20))}
        u, d = rng.choice(names), rng.choice(names)
        if (u, d) in pairs:
            continue
        old = [Edge(a, b) for a, b in sorted(pairs)]
        depth = rng.choice([1, 2, 3, 100])
        got = Graph([*old, Edge(u, d)]).affected_by(Edge(u, d), depth)
        down, up = brute_changed(old, Edge(u, d), depth)
        if depth == 100:  # no walk is cut: exactly the answers that change
            assert (got.impact_of, got.lineage_of) == (down, up), (old, u, d)
            checked += 1
        else:  # a cut walk may be rewritten unchanged (its `truncated` already said so)
            assert got.impact_of >= down and got.lineage_of >= up, (old, u, d, depth)
    assert checked > 400  # about a quarter of the draws
