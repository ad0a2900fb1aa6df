"""PSI against values computed by hand."""

from __future__ import annotations

import math

import pytest

from staleness import drift


def test_psi_of_two_bins_by_hand() -> None:
    # shares 0.5/0.5 -> 0.8/0.2: 0.3 ln(1.6) + (-0.3) ln(0.4) = 0.3 ln 4
    assert drift.psi([50, 50], [80, 20]) == pytest.approx(0.3 * math.log(4), abs=1e-12)
    assert drift.psi([50, 50], [500, 500]) == 0.0


def test_empty_bin_uses_epsilon() -> None:
    # reference share 0 -> 1e-4: (0.5 - 1) ln(0.5 / 1) + (0.5 - 1e-4) ln(0.5 / 1e-4)
    expected = -0.5 * math.log(0.5) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert drift.psi([100, 0], [50, 50], epsilon=1e-4) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(drift.psi([0, 0], [1, 2]))


def test_fine_bins_merge_into_reference_quantiles() -> None:
    ref = {"0": 10, "1": 10, "2": 10, "3": 10}
    rec = {"0": 40, "1": 0, "2": 5, "3": 5, "7": 10}  # "7": beyond the reference's range
    assert drift.coarsen(ref, rec, 2) == ([20, 20], [40, 20])
    assert drift.histogram_psi(ref, rec, groups=2) == pytest.approx(
        (40 / 60 - 0.5) * math.log((40 / 60) / 0.5) + (20 / 60 - 0.5) * math.log((20 / 60) / 0.5)
    )


def test_regression_bins_in_value_order() -> None:
    bins = ["+2", "-1", "0", "+0", "-3", "-0"]
    assert sorted(bins, key=drift.bin_value) == ["-3", "-1", "-0", "0", "+0", "+2"]


def test_bands_and_noise_floor() -> None:
    assert [drift.band(x) for x in (0.05, 0.1, 0.2, 0.21)] == [
        "stable",
        "moderate",
        "moderate",
        "significant",
    ]
    assert drift.noise_floor(10, 1000, 1000) == pytest.approx(9 * 0.002)


def test_feature_psi_numeric_and_categorical() -> None:
    ref = {"color": {"red": 50, "blue": 50}, "size": {"0": 50, "1": 50}, "only_ref": {"0": 1}}
    rec = {"color": {"red": 80, "blue": 20}, "size": {"0": 50, "1": 50}}
    out = drift.feature_psi(ref, rec, groups=10)
    assert out == {"color": pytest.approx(0.3 * math.log(4)), "size": 0.0}
