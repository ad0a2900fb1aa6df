"""One request per staleness episode, none in flight or within the 24 h cooldown."""

from __future__ import annotations

from retrain.episodes import EpisodeTracker
from retrain.messages import StalenessView, request_id

HOUR = 3600 * 1000
DAY = 24 * HOUR


def ev(state: str, t: int, model: str = "m", version: str = "1", **kw: object) -> StalenessView:
    return StalenessView.model_validate(
        {
            "model_id": model,
            "model_version": version,
            "state": state,
            "event_time": t,
            "score": 0.8,
            "reason": "auc dropped",
            **kw,
        }
    )


def ids(tracker: EpisodeTracker, event: StalenessView, busy: bool = False) -> list[str]:
    return [r.request_id for r in tracker.observe(event, lambda _: busy).requests]


def test_one_request_per_episode() -> None:
    t = EpisodeTracker(DAY)
    assert ids(t, ev("WARNING", 0)) == []
    assert ids(t, ev("STALE", HOUR)) == [request_id("m", "1", HOUR)]
    assert ids(t, ev("STALE", 2 * HOUR)) == []  # same episode
    assert ids(t, ev("WARNING", 3 * HOUR)) == []  # WARNING does not end it
    assert ids(t, ev("STALE", 4 * HOUR)) == []


def test_cooldown_after_fresh_then_a_new_episode() -> None:
    t = EpisodeTracker(DAY)
    assert len(ids(t, ev("STALE", 0))) == 1
    t.observe(ev("FRESH", HOUR))
    verdict = t.observe(ev("STALE", 2 * HOUR))  # new episode, inside the cooldown
    assert verdict.requests == [] and "cooldown" in verdict.suppressed[0]
    assert ids(t, ev("STALE", DAY - 1)) == []
    assert ids(t, ev("STALE", DAY)) == [request_id("m", "1", 2 * HOUR)]  # same episode, later


def test_a_new_version_ends_the_episode_and_answers_the_request() -> None:
    t = EpisodeTracker(cooldown_ms=0)
    first = ids(t, ev("STALE", 0))
    verdict = t.observe(ev("STALE", HOUR, version="2"))
    assert verdict.new_version_of is not None
    assert verdict.new_version_of.request_id == first[0]
    assert [r.request_id for r in verdict.requests] == [request_id("m", "2", HOUR)]


def test_no_request_while_one_is_in_flight() -> None:
    t = EpisodeTracker(DAY)
    assert ids(t, ev("STALE", 0), busy=True) == []
    assert ids(t, ev("STALE", HOUR)) == [request_id("m", "1", 0)]


def test_dependents_only_when_the_policy_says_so() -> None:
    off = EpisodeTracker(DAY)
    assert len(ids(off, ev("STALE", 0, impacted=["d1", "d2"]))) == 1
    on = EpisodeTracker(DAY, dependents=True)
    requests = on.observe(ev("STALE", 0, impacted=["d1", "d2"])).requests
    assert [(r.model_id, r.upstream) for r in requests] == [("m", None), ("d1", "m"), ("d2", "m")]
    assert requests[1].request_id == request_id("d1", "upstream:m", 0)
    assert on.observe(ev("STALE", HOUR, impacted=["d1", "d2"])).requests == []


def test_a_fold_over_history_gives_the_same_memory() -> None:
    history = [ev("STALE", 0), ev("FRESH", HOUR), ev("STALE", 2 * HOUR)]
    live = EpisodeTracker(DAY)
    replayed = EpisodeTracker(DAY)
    for event in history:
        live.observe(event)
        replayed.observe(event)
    assert replayed.models == live.models
    assert ids(replayed, ev("STALE", DAY + 1)) == [request_id("m", "1", 2 * HOUR)]
