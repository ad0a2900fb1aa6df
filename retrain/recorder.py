"""Where each request's status goes: the registry (`registry.store.Store.record_retrain`), which
shows it on GET /models/{model_id}/retrains. The agent codes against this Protocol."""

from __future__ import annotations

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
