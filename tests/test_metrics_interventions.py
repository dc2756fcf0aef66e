"""FactorVAE and BetaVAE scores on a toy ground-truth dataset with exact encoders."""

import numpy as np
import pytest
from metrics_toydata import ToyGrid, numpy_encoder, rotation

from workers.metrics.betavae import betavae_score
from workers.metrics.factorvae import factorvae_score

SMALL = dict(num_train=300, num_eval=200)


def test_factorvae_perfect_code_and_active_dims():
    data = ToyGrid(sizes=(3, 4, 5))
    out = factorvae_score(numpy_encoder(data, extra_constant=2), data, seed=0,
                          num_variance_estimate=1000, **SMALL)
    assert out["factorvae_train"] == 1.0 and out["factorvae_eval"] == 1.0
    assert out["factorvae_active_dims"] == 3  # the two constant latents are pruned (the library says 5)


def test_factorvae_rotated_pair_scores_lower_and_is_seeded():
    data = ToyGrid(sizes=(6, 6, 6))
    enc = numpy_encoder(data, mix=rotation(3, 0, 1, 45.0))
    out = factorvae_score(enc, data, seed=1, num_variance_estimate=1000, **SMALL)
    assert out["factorvae_eval"] < 0.9
    assert out == factorvae_score(enc, data, seed=1, num_variance_estimate=1000, **SMALL)


def test_factorvae_without_active_latents_is_zero():
    data = ToyGrid()
    out = factorvae_score(lambda x: np.zeros((len(x), 2)), data, seed=0, num_variance_estimate=100, **SMALL)
    assert out == {"factorvae_train": 0.0, "factorvae_eval": 0.0, "factorvae_active_dims": 0}


def test_betavae_perfect_rotated_and_noise():
    data = ToyGrid(sizes=(4, 4, 4))
    perfect = betavae_score(numpy_encoder(data), data, seed=0, **SMALL)
    assert perfect["betavae_train"] == 1.0 and perfect["betavae_eval"] == 1.0
    rng = np.random.default_rng(0)
    noise = betavae_score(lambda x: rng.normal(size=(len(x), 3)), data, seed=0, **SMALL)
    assert noise["betavae_eval"] == pytest.approx(1 / 3, abs=0.12)


def test_nan_codes_raise():
    data = ToyGrid()
    with pytest.raises(ValueError, match="NaN"):
        betavae_score(lambda x: np.full((len(x), 3), np.nan), data, seed=0, **SMALL)
