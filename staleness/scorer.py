"""The worker's two entry points. Pure apart from `read` (the join state's Reader).

In the join's checkpoint, for every model whose state moved:

    for key, value in references_to_store(read, model_id, cfg):
        txn.set(key, value)                       # same transaction as the buckets
    judged = score_model(read, model_id, cfg, facts=registry_facts)
    if judged:
        version, verdict = judged
        if policy.due(model_id, version, verdict.state, wall_ms):
            event = to_event(verdict, model_id, version, wall_ms, impacted)
            send(topic_staleness, key=model_id, value=event.model_dump_json())
            policy.record(model_id, version, verdict.state, wall_ms)

A heartbeat timer runs `score_model` + `policy.due` for every owned model, changed or not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from staleness.config import StalenessConfig
from staleness.inputs import VersionFacts, current_version, staleness_inputs
from staleness.reference import Reader, reference_key, refresh_reference
from staleness.verdict import Verdict, judge
from tables import keys


def references_to_store(
    read: Reader, model_id: str, cfg: StalenessConfig, lookback_ms: int | None = None
) -> list[tuple[bytes, dict[str, Any]]]:
    """(key, value) of every reference record of the model that is new or changed."""
    info = read(keys.model(model_id))
    if info is None:
        return []
    out = []
    for version in info["versions"]:
        record = refresh_reference(
            read, model_id, version, info["clock"], cfg, lookback_ms or cfg.lookback_ms
        )
        if record is not None:
            out.append((reference_key(model_id, version), record))
    return out


def score_model(
    read: Reader,
    model_id: str,
    cfg: StalenessConfig,
    now_ms: int | None = None,
    facts: VersionFacts | None = None,
    lookback_ms: int | None = None,
    facts_for: Callable[[str], VersionFacts | None] | None = None,
) -> tuple[str, Verdict] | None:
    """The judged version and its verdict at `now_ms` (default: the model's clock).

    `facts_for(version)` gives the registry's facts of the judged version, once it is known.
    """
    info = read(keys.model(model_id))
    if info is None:
        return None
    at = info["clock"] if now_ms is None else now_ms
    version = None
    if facts_for is not None and info["task"] is not None and info["versions"]:
        shortest = min(cfg.windows, key=lambda w: w.length_ms)
        version = current_version(read, model_id, info["versions"], shortest, at)
        facts = facts_for(version) if version is not None else None
    signals = staleness_inputs(
        read,
        model_id,
        at,
        cfg,
        version=version,
        facts=facts,
        lookback_ms=lookback_ms or cfg.lookback_ms,
    )
    if signals is None:
        return None
    return signals.version, judge(signals, cfg)
