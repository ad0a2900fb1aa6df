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

Alarms that do not grow with traffic: with B bins fixed and both samples drawn from one
distribution, PSI / (1/n_ref + 1/n_recent) tends to a chi-square with B - 1 degrees of freedom
(Yurdakul, "Statistical properties of the population stability index", Western Michigan
University, 2018; PSI is Jeffreys' divergence, whose two-sample statistic is asymptotically
chi-square like Pearson's). So under no drift PSI has mean (B-1)c and standard deviation
sqrt(2(B-1))c with c = 1/n_ref + 1/n_recent. The verdict judges `beyond_noise`: PSI less that
mean and `z` of those deviations (`RUNWAY_STALENESS_PSI_NOISE_Z`, default 3), so a window of 40
predictions cannot cross a band on noise alone, and a window of a million is judged on nearly
its raw PSI. B is the number of runs actually compared (after merging, or the categories).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


def noise_sd(groups: int, n_reference: int, n_recent: int) -> float:
    """Standard deviation of PSI under no drift: sqrt(2 (groups - 1)) (1/n_ref + 1/n_recent)."""
    if n_reference <= 0 or n_recent <= 0:
        return math.inf
    return math.sqrt(2 * max(groups - 1, 0)) * (1 / n_reference + 1 / n_recent)


def noise_allowance(groups: int, n_reference: int, n_recent: int, z: float) -> float:
    """What PSI may reach on sampling noise alone: its null mean plus `z` deviations."""
    return noise_floor(groups, n_reference, n_recent) + z * noise_sd(groups, n_reference, n_recent)


def beyond_noise(value: float, groups: int, n_reference: int, n_recent: int, z: float) -> float:
    """PSI less its noise allowance, at least 0 (what the verdict's drift score ramps on)."""
    return max(value - noise_allowance(groups, n_reference, n_recent, z), 0.0)


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
    """PSI per feature present on both sides (histograms: bin or category -> count)."""
    return {name: f.psi for name, f in feature_drift(reference, recent, groups, epsilon).items()}


@dataclass(frozen=True)
class FeatureDrift:
    psi: float
    groups: int  # runs (numeric) or categories compared: the B of the noise allowance
    n_reference: int
    n_recent: int


def feature_drift(
    reference: Mapping[str, Mapping[str, int]],
    recent: Mapping[str, Mapping[str, int]],
    groups: int = 10,
    epsilon: float = 1e-4,
) -> dict[str, FeatureDrift]:
    """PSI per feature present on both sides, with what its noise allowance needs.

    Numeric bins (names `bin_value` can order) are merged into reference deciles like scores;
    categorical ones (any other name) are compared category by category.
    """
    out: dict[str, FeatureDrift] = {}
    for name in sorted(set(reference) & set(recent)):
        ref, rec = reference[name], recent[name]
        try:
            ref_runs, rec_runs = coarsen(ref, rec, groups)
        except ValueError:  # categories: no order, no merging
            cats = sorted(set(ref) | set(rec))
            ref_runs, rec_runs = [ref.get(c, 0) for c in cats], [rec.get(c, 0) for c in cats]
        value = psi(ref_runs, rec_runs, epsilon)
        if not math.isnan(value):
            out[name] = FeatureDrift(value, len(ref_runs), sum(ref_runs), sum(rec_runs))
    return out
