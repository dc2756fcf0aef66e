"""SAP (discrete LinearSVC form and continuous squared-correlation form) against known answers."""

import numpy as np
import pytest

from workers.metrics.sap import sap


def _split(f, codes):
    h = len(f) * 2 // 3
    return codes[:h], f[:h], codes[h:], f[h:]


def test_continuous_form_perfect_permuted_rescaled_and_rotated():
    rng = np.random.default_rng(0)
    f = rng.uniform(size=(3000, 3))
    perfect = sap(*_split(f, f.copy()), continuous=True)["sap"]
    assert perfect == pytest.approx(1.0, abs=0.01)  # squared sample correlations of independent columns
    moved = sap(*_split(f, f[:, [1, 2, 0]] * np.array([-4.0, 0.5, 9.0]) + 3.0), continuous=True)["sap"]
    assert moved == pytest.approx(perfect, abs=1e-12)
    rot = f.copy()
    rot[:, 0], rot[:, 1] = f[:, 0] + f[:, 1], f[:, 0] - f[:, 1]
    assert sap(*_split(f, rot), continuous=True)["sap"] < perfect - 0.3


def test_discrete_form_perfect_and_rotated():
    rng = np.random.default_rng(1)
    f = rng.integers(0, 2, size=(1500, 3))  # binary factors: a 1-D linear SVM separates them exactly
    codes = f * 4.0 + rng.normal(0, 0.1, size=f.shape)
    perfect = sap(*_split(f, codes))["sap"]
    assert perfect > 0.45  # best latent ≈ 1.0 accuracy, the others ≈ chance 0.5
    rot = codes.copy()
    rot[:, 0], rot[:, 1] = codes[:, 0] + codes[:, 1], codes[:, 0] - codes[:, 1]
    assert sap(*_split(f, rot))["sap"] < perfect - 0.1


def test_degenerate_inputs():
    rng = np.random.default_rng(2)
    f = rng.uniform(size=(300, 2))
    assert sap(*_split(f, np.ones((300, 2))), continuous=True)["sap"] == 0.0  # constant latents
    assert sap(*_split(f, f[:, :1]), continuous=True)["sap"] >= 0.0  # single latent: second best 0
    with pytest.raises(ValueError, match="NaN"):
        sap(*_split(f, np.full((300, 2), np.nan)), continuous=True)
