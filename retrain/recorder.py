"""Where each request's status goes: the registry (`registry.store.Store.record_retrain`), which
shows it on GET /models/{model_id}/retrains. The agent codes against this Protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class RetrainRecorder(Protocol):
    def record_retrain(
        self,
        request_id: str,
        model_id: str,
        model_version: str,
        episode: int,
        status: str,
        detail: str | None,
        at_ms: int,
    ) -> None: ...


@dataclass
class MemoryRecorder:
    """For unit tests only: the agent process records into the registry."""

    rows: list[tuple[str, str, str, int, str, str | None, int]] = field(default_factory=list)

    def record_retrain(
        self,
        request_id: str,
        model_id: str,
        model_version: str,
        episode: int,
        status: str,
        detail: str | None,
        at_ms: int,
    ) -> None:
        self.rows.append((request_id, model_id, model_version, episode, status, detail, at_ms))
