"""Staleness episodes: which staleness event deserves a retrain request. Pure.

An episode opens with the first STALE verdict after FRESH (or after a new model version) and ends
when the model is FRESH again or a new version appears (the registered retrain). Each episode
gets at most one request, and none while the model has one in flight or within the cooldown of
its last request. The cooldown is measured in *event time* (the verdicts' `event_time`), so a
fold over the retained `staleness` topic rebuilds exactly the memory the agent had before a
restart: that fold is how the agent remembers (see `retrain/agent.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from retrain.messages import RetrainRequest, StalenessView, request_id


@dataclass
class ModelMemory:
    version: str | None = None
    episode: int | None = None  # event time of the STALE verdict that opened the open episode
    requested: bool = False  # the open episode has had its request
    last_request_at: int | None = None  # event time of the last request (cooldown base)
    awaiting_version: RetrainRequest | None = None  # own request made for the current version
    dependents_requested: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Verdict:
    requests: list[RetrainRequest]
    suppressed: list[str]  # why a request was not made (for the log)
    new_version_of: RetrainRequest | None  # the request a new version answered (succeeded)


class EpisodeTracker:
    def __init__(self, cooldown_ms: int, dependents: bool = False) -> None:
        self.cooldown_ms = cooldown_ms
        self.dependents = dependents
        self.models: dict[str, ModelMemory] = {}

    def observe(
        self, event: StalenessView, busy: Callable[[str], bool] = lambda _: False
    ) -> Verdict:
        """Fold one event in; the requests it calls for. `busy(model_id)`: a request of that
        model is in flight (queued, calling, or waiting in the dead-letter queue)."""
        memory = self.models.setdefault(event.model_id, ModelMemory())
        ended_by_version: RetrainRequest | None = None
        if memory.version is not None and event.model_version != memory.version:
            ended_by_version = memory.awaiting_version
            memory.awaiting_version = None
            memory.episode = None
        memory.version = event.model_version
        if event.state == "FRESH":
            memory.episode = None
        if event.state != "STALE":
            return Verdict([], [], ended_by_version)
        if memory.episode is None:
            memory.episode = event.event_time
            memory.requested = False
            memory.dependents_requested = set()
        requests: list[RetrainRequest] = []
        suppressed: list[str] = []
        if not memory.requested:
            why = self._blocked(event.model_id, memory, event.event_time, busy)
            if why:
                suppressed.append(f"{event.model_id}: {why}")
            else:
                requests.append(self._request(event, event.model_id, memory.episode))
        if self.dependents:
            for dependent in event.impacted:
                if dependent in memory.dependents_requested or dependent == event.model_id:
                    continue
                other = self.models.setdefault(dependent, ModelMemory())
                why = self._blocked(dependent, other, event.event_time, busy)
                if why:
                    suppressed.append(f"{dependent} (dependent of {event.model_id}): {why}")
                    continue
                memory.dependents_requested.add(dependent)
                requests.append(self._request(event, dependent, memory.episode))
        return Verdict(requests, suppressed, ended_by_version)

    def _blocked(
        self, model_id: str, memory: ModelMemory, now: int, busy: Callable[[str], bool]
    ) -> str | None:
        if busy(model_id):
            return "a request is in flight"
        if memory.last_request_at is not None and now - memory.last_request_at < self.cooldown_ms:
            return f"cooldown: last request {now - memory.last_request_at} ms ago"
        return None

    def _request(self, event: StalenessView, model_id: str, episode: int) -> RetrainRequest:
        own = model_id == event.model_id
        version = event.model_version if own else ""
        memory = self.models.setdefault(model_id, ModelMemory())
        memory.last_request_at = event.event_time
        rid = request_id(model_id, version if own else f"upstream:{event.model_id}", episode)
        request = RetrainRequest(
            request_id=rid,
            model_id=model_id,
            model_version=version,
            episode=episode,
            score=event.score,
            reason=event.reason if own else f"upstream {event.model_id} is stale: {event.reason}",
            upstream=None if own else event.model_id,
        )
        if own:
            memory.requested = True
            memory.awaiting_version = request
        return request
