"""The scorer's thresholds as a plain dataclass, so the pure functions need no environment.

Defaults equal the `RUNWAY_STALENESS_*` settings' defaults (README, "Settings"); the worker builds
one from the settings with `from_settings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from config.windows import Window, parse_windows

if TYPE_CHECKING:
    from config.settings import Settings

DAY_MS = 24 * 3_600_000


@dataclass(frozen=True)
class StalenessConfig:
    windows: tuple[Window, ...] = tuple(parse_windows("1h,24h"))
    reference_window_ms: int = DAY_MS
    reference_settle_ms: int = DAY_MS
    lookback_ms: int = 7 * DAY_MS  # how far back a version's first prediction is looked for
    min_labels: int = 200
    min_label_coverage: float = 0.1
    min_predictions: int = 500
    binary_metric: Literal["roc_auc", "accuracy"] = "roc_auc"
    noise_z: float = 2.0
    perf_warning: float = 0.05
    perf_stale: float = 0.10
    psi_moderate: float = 0.1
    psi_significant: float = 0.2
    psi_bins: int = 10
    psi_epsilon: float = 1e-4
    psi_noise_z: float = 3.0  # PSI counts beyond its null mean + this many null deviations
    calibration_max_ece: float = 0.05  # scores estimate performance only when this calibrated
    # performance is also judged over the last k hours that have labels (labels an hour late
    # leave a 1h window empty): k of these, ending at the newest labelled hour
    labelled_spans_h: tuple[int, ...] = (1, 2, 4, 8)
    max_age_ms: int = 30 * DAY_MS
    age_warning_fraction: float = 0.8
    warning_score: float = 0.4
    stale_score: float = 0.7
    heartbeat_interval_ms: int = 60_000


def from_settings(settings: Settings) -> StalenessConfig:
    return StalenessConfig(
        windows=tuple(parse_windows(settings.staleness_windows)),
        reference_window_ms=settings.staleness_reference_window_ms,
        reference_settle_ms=settings.staleness_reference_settle_ms,
        min_labels=settings.staleness_min_labels,
        min_label_coverage=settings.staleness_min_label_coverage,
        min_predictions=settings.staleness_min_predictions,
        binary_metric=settings.staleness_binary_metric,
        noise_z=settings.staleness_noise_z,
        perf_warning=settings.staleness_perf_warning,
        perf_stale=settings.staleness_perf_stale,
        psi_moderate=settings.staleness_psi_moderate,
        psi_significant=settings.staleness_psi_significant,
        psi_bins=settings.staleness_psi_bins,
        psi_epsilon=settings.staleness_psi_epsilon,
        psi_noise_z=settings.staleness_psi_noise_z,
        calibration_max_ece=settings.staleness_calibration_max_ece,
        max_age_ms=settings.staleness_max_age_ms,
        age_warning_fraction=settings.staleness_age_warning_fraction,
        warning_score=settings.staleness_warning_score,
        stale_score=settings.staleness_stale_score,
        heartbeat_interval_ms=settings.staleness_heartbeat_interval_ms,
        lookback_ms=settings.staleness_reference_lookback_ms,
    )
