from registry.degrade import Answer, Cached, Down, Miss, decide, health

EMPTY = {"impacted": []}


def test_database_answer_wins_and_carries_no_warning() -> None:
    assert decide({"impacted": ["b"]}, None, EMPTY, 10_000) == Answer(
        {"impacted": ["b"]}, "database"
    )


def test_database_down_serves_the_cache_with_a_stale_warning() -> None:
    got = decide(Down("refused"), Cached({"impacted": ["b"]}, 4_000), EMPTY, 10_000)
    assert (got.value, got.source, got.stale, got.unavailable, got.cached_at) == (
        {"impacted": ["b"]}, "cache", True, False, 4_000,
    )  # fmt: skip
    assert got.warnings == ["stale: database unavailable (refused); served from cache, 6 s old"]


def test_database_down_and_no_cache_gives_empty_with_unavailable_warning() -> None:
    for cache, why in ((Miss(), "no cached copy"), (Down("redis gone"), "redis gone")):
        got = decide(Down("refused"), cache, EMPTY, 10_000)
        assert (got.value, got.source, got.stale, got.unavailable) == (EMPTY, "none", False, True)
        assert got.warnings == [f"unavailable: database unavailable (refused) and cache: {why}"]


def test_health_states() -> None:
    up = {"kafka": True, "redis": True, "database": True}
    assert health(up) == "ok"
    assert health({**up, "kafka": False}) == "degraded"
    assert health({**up, "database": False}) == "degraded"
    assert health({**up, "redis": False}) == "degraded"
    assert health({**up, "redis": False, "database": False}) == "failing"
