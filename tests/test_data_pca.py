"""Principal-axis reconstruction (Bhowal et al. Table 7) on data whose spectrum is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from sweep.cli import main
from workers.data.pca import parse_subsets, reconstruction_errors, subset_label


def _known_spectrum() -> tuple[np.ndarray, np.ndarray]:
    """8 points in R^6 with sample covariance exactly Q diag(9, 4, 1, 0.25, 0, 0) Qᵀ (Q a random rotation)."""
    H = np.array([[1.0]])
    for _ in range(3):
        H = np.block([[H, H], [H, -H]])
    Z = H[:, 1:5]  # zero-mean, orthogonal columns with squared norm 8: sample variance 1 each
    v = np.array([9.0, 4.0, 1.0, 0.25])
    Q = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))[0]
    return Z * np.sqrt(v) @ Q[:, :4].T + 3.0, np.r_[v, 0.0, 0.0]


def test_errors_are_the_dropped_variances():
    X, v = _known_spectrum()
    subsets = [(0, 1), (0, 2), (0, 4), (1, 3), (2, 6), (0, 50)]
    rows = reconstruction_errors(X, subsets)
    for (a, b), r in zip(subsets, rows, strict=True):
        dropped = v.sum() - v[a:b].sum()
        assert r["mse"] == pytest.approx(dropped / 6, abs=1e-10)  # mean over the 6 coordinates
        assert r["variance_kept"] == pytest.approx(v[a:b].sum() / v.sum(), abs=1e-12)
    assert rows[-1]["axes"] == 6  # a range past D is cut at D


def test_subset_syntax():
    assert parse_subsets("1500, 2000-3000") == [(0, 1500), (2000, 3000)]
    assert [subset_label(*s) for s in parse_subsets("3,2-5")] == ["first 3", "3 to 5"]
    for bad in ("x", "5-2", "0"):
        with pytest.raises(ValueError):
            parse_subsets(bad)


def test_cli_prints_the_table(capsys: pytest.CaptureFixture) -> None:
    # synth_lin lies in a plane of R^3: two axes reconstruct it exactly, the third alone keeps nothing
    assert main(["datasets", "pca", "synth_lin", "--n", "400", "--axes", "1,2,2-3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    first2 = next(x for x in lines if x.startswith("first 2"))
    assert float(first2.split()[-2]) == pytest.approx(0.0, abs=1e-6) and float(first2.split()[-1]) == pytest.approx(1.0)
    third = next(x for x in lines if x.startswith("3 to 3"))
    assert float(third.split()[-1]) == pytest.approx(0.0, abs=1e-6)
    assert main(["datasets", "pca", "synth_lin", "--axes", "3-1"]) == 2
