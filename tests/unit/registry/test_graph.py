from registry.graph import Edge, Reached, downstream, impacted_models, nodes, upstream

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
