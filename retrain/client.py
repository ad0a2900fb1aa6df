"""The orchestrator's start call (Netflix Maestro API):
`POST /api/v3/workflows/{workflow_id}/versions/latest/actions/start`, with the request's typed run
parameters and its `request_id` (the idempotency key). Turns transport failures and timeouts into
`Unreachable`; every HTTP answer comes back as an `Answer` for `retrain.dispatch` to judge."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import quote

import aiohttp

from retrain.backoff import parse_retry_after
from retrain.dispatch import Answer, Unreachable
from retrain.messages import RetrainRequest


def start_path(workflow_id: str) -> str:
    return f"/api/v3/workflows/{quote(workflow_id, safe='')}/versions/latest/actions/start"


def start_body(request: RetrainRequest) -> dict[str, object]:
    return {
        "request_id": request.request_id,
        "initiator": {"type": "manual", "user": "runway-retrain-agent"},
        "run_params": request.run_params(),
    }


class OrchestratorClient:
    def __init__(
        self,
        base_url: str,
        workflow_for: Callable[[str], str],
        timeout_s: float,
        wall_s: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.workflow_for = workflow_for
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.wall_s = wall_s
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self.timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def __call__(self, request: RetrainRequest) -> Answer:
        assert self._session is not None, "start() the client first"
        url = self.base_url + start_path(self.workflow_for(request.model_id))
        try:
            async with self._session.post(url, json=start_body(request)) as response:
                text = await response.text()
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self.wall_s())
                return Answer(response.status, text, retry_after)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Unreachable(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
