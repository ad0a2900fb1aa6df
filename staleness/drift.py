"""Population stability index between a reference and a recent histogram. Pure.

PSI = sum over bins of (q - p) * ln(q / p), p and q the reference and recent shares of a bin.
An empty bin would make it infinite, so a share of 0 is replaced by `epsilon` (default 1e-4,
`RUNWAY_STALENESS_PSI_EPSILON`): a bin the reference never saw that holds 1 % of recent traffic
then adds about 0.01 * ln(100) = 0.046.

The usual bands (< 0.1 stable, 0.1-0.2 moderate, > 0.2 significant) were set for about ten bins
of equal reference mass. The join keeps finer bins (100 on [0, 1] for binary scores, signed log
bins for regression), and PSI over 100 sparse bins has a large small-sample bias, so the fine
bins are first merged into `groups` (default 10) runs of about equal reference mass, in value
order (reference deciles). What remains of sampling noise is the expected PSI of two samples of
one distribution, about (groups - 1) * (1/n_ref + 1/n_recent) (PSI is a symmetric chi-square
divergence); `noise_floor` gives it so the verdict can weigh it and require enough predictions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

Band = Literal["stable", "moderate", "significant"]

# Regression bins of tables.aggregates: "0", "+k" = [1.05^k, 1.05^(k+1)), "-k" its mirror.
_RATIO = 1.05


def bin_value(bin_: str) -> float:
    """A value inside the bin, to put bins (binary "0".."99", regression "-k"/"0"/"+k") in order."""
    if bin_ and bin_[0] in "+-":
        magnitude = _RATIO ** (int(bin_[1:]) + 0.5)
        return magnitude if bin_[0] == "+" else -magnitude
    return float(bin_)  # binary bin index, or the regression zero bin


def psi(reference: Sequence[float], recent: Sequence[float], epsilon: float = 1e-4) -> float:
    """PSI of two aligned count vectors; NaN when either side is empty."""
    n_ref, n_rec = sum(reference), sum(recent)
    if n_ref <= 0 or n_rec <= 0:
        return math.nan
    total = 0.0
    for r, c in zip(reference, recent, strict=True):
        p = max(r / n_ref, epsilon)
        q = max(c / n_rec, epsilon)
        total += (q - p) * math.log(q / p)
    return total


def coarsen(
    reference: Mapping[str, int], recent: Mapping[str, int], groups: int
) -> tuple[list[int], list[int]]:
    """Merge fine bins, in value order, into at most `groups` runs of ~equal reference mass.

    A run closes once the reference mass seen reaches the next k/groups quantile; bins the
    reference never saw join the run they fall in (below its minimum: the first run; above its
    maximum: the last), so a recent shift outside the reference's range is not hidden.
    """
    ordered = sorted(set(reference) | set(recent), key=bin_value)
    total = sum(reference.values())
    ref_runs: list[int] = []
    rec_runs: list[int] = []
    run_ref = run_rec = seen = 0
    for bin_ in ordered:
        run_ref += reference.get(bin_, 0)
        run_rec += recent.get(bin_, 0)
        seen += reference.get(bin_, 0)
        if len(ref_runs) < groups - 1 and total and seen >= (len(ref_runs) + 1) * total / groups:
            ref_runs.append(run_ref)
            rec_runs.append(run_rec)
            run_ref = run_rec = 0
    if run_ref or run_rec or not ref_runs:
        ref_runs.append(run_ref)
        rec_runs.append(run_rec)
    return ref_runs, rec_runs


def histogram_psi(
    reference: Mapping[str, int],
    recent: Mapping[str, int],
    groups: int = 10,
    epsilon: float = 1e-4,
) -> float:
    """PSI of two histograms of the same binning, over reference-decile runs of their bins."""
    ref_runs, rec_runs = coarsen(reference, recent, groups)
    return psi(ref_runs, rec_runs, epsilon)


def noise_floor(groups: int, n_reference: int, n_recent: int) -> float:
    """Expected PSI of two samples of one distribution (what no drift at all still shows)."""
    if n_reference <= 0 or n_recent <= 0:
        return math.inf
    return (groups - 1) * (1 / n_reference + 1 / n_recent)


def band(value: float, moderate: float = 0.1, significant: float = 0.2) -> Band:
    if value < moderate:
        return "stable"
    return "moderate" if value <= significant else "significant"


def feature_psi(
    reference: Mapping[str, Mapping[str, int]],
    recent: Mapping[str, Mapping[str, int]],
    groups: int = 10,
    epsilon: float = 1e-4,
) -> dict[str, float]:
    """PSI per feature present on both sides (histograms: bin or category -> count).

    Numeric bins (names `bin_value` can order) are merged into reference deciles like scores;
    categorical ones (any other name) are compared category by category.
    """
    out: dict[str, float] = {}
    for name in sorted(set(reference) & set(recent)):
        ref, rec = reference[name], recent[name]
        try:
            value = histogram_psi(ref, rec, groups, epsilon)
        except ValueError:  # categories: no order, no merging
            cats = sorted(set(ref) | set(rec))
            value = psi([ref.get(c, 0) for c in cats], [rec.get(c, 0) for c in cats], epsilon)
        if not math.isnan(value):
            out[name] = value
    return out
