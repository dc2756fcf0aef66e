"""The checkpoint evaluation hook: column names, nulls, seeding, and known values on a toy model."""

import numpy as np
import pytest
from metrics_toydata import ToyGrid, ToySeedModel, rotation

from workers.metrics.evaluate import evaluate_checkpoint
from workers.metrics.registry import METRICS, TRAINER_COLUMNS
from workers.store.schema import METRIC_COLUMNS

METRIC_KEYS = {name: tuple(m.columns) for name, m in METRICS.items()}

CFG = {"n_eval": 400, "n_train_supervised": 300, "n_test_supervised": 200, "n_jobs": 1}
CHEAP = ["dto", "c_ima", "polarized", "ds", "mig", "mig_sup", "sap"]


def test_metric_keys_are_sink_columns():
    keys = {k for ks in METRIC_KEYS.values() for k in ks}
    assert len(keys) == sum(len(ks) for ks in METRIC_KEYS.values())  # no column written by two metrics
    assert keys <= set(METRIC_COLUMNS)
    assert set(METRIC_COLUMNS) - keys == set(TRAINER_COLUMNS) == {"polarized_fraction"}  # needs the trace


def test_all_metrics_on_a_perfect_toy_model():
    data = ToyGrid(sizes=(3, 4, 5), n=4000)
    out = evaluate_checkpoint(ToySeedModel(data), data, metrics=list(METRICS), eval_cfg=CFG, seed=7)
    # configuration-scope metrics (UDR) need every restart: the evaluation stage computes them
    assert set(out) == {k for name, ks in METRIC_KEYS.items() if METRICS[name].scope == "checkpoint" for k in ks}
    assert out["modularity"] > 0.95 and out["irs"] > 0.95 and out["explicitness_test"] > 0.95
    # trees split a code that equals its factor exactly; a linear model on an ordinal factor only partly
    assert out["downstream_gbt_100_test"] > 0.95 and out["downstream_logreg_100_test"] > 0.5
    assert out["downstream_gbt_1000_test"] is None  # 300 supervised training points: no 1,000-sample fit
    assert out["gaussian_total_correlation"] == pytest.approx(0.0, abs=0.01)  # independent factors
    assert out["dto"] == pytest.approx(0.0, abs=1e-5) and out["dto_active"] == pytest.approx(0.0, abs=1e-5)
    assert out["c_ima"] == pytest.approx(0.0, abs=1e-4)
    # a linear decoder: its linear local decoder and its Jacobian describe Dec(mu + eps) - Dec(mu) exactly
    assert out["local_decoder_linear"] == pytest.approx(0.0, abs=1e-6)
    assert out["local_decoder_stoch_jacobian"] == pytest.approx(0.0, abs=1e-5)
    assert out["od_u"] == pytest.approx(out["od_v"], abs=1e-12)  # U's distance equals V's for the polar factor
    assert out["mig"] > 0.95 and out["factorvae_eval"] == 1.0 and out["betavae_eval"] == 1.0
    assert out["dci_disentanglement"] > 0.9 and out["active_units"] == 3 and out["active_units_mu"] == 3
    assert out["sigma2_per_dim"] == pytest.approx([0.01] * 3)
    assert out["polar_pairs"] == 0 and out["embedding_residual_cartesian"] == pytest.approx(0.0, abs=1e-6)
    assert not any(isinstance(v, float) and np.isnan(v) for v in out.values())


def test_rotated_model_has_closed_form_dto_and_lower_scores():
    data = ToyGrid(sizes=(3, 4, 5), n=4000)
    base = evaluate_checkpoint(ToySeedModel(data), data, metrics=CHEAP, eval_cfg=CFG, seed=1)
    rot = evaluate_checkpoint(ToySeedModel(data, mix=rotation(3, 0, 1, 45.0)), data, metrics=CHEAP,
                              eval_cfg=CFG, seed=1)
    assert rot["dto"] == pytest.approx(np.sqrt(4 - 2 * np.sqrt(2)), abs=1e-4)
    assert rot["mig"] < base["mig"] - 0.1 and rot["sap"] < base["sap"] and rot["ds"] < base["ds"]


def test_same_seed_same_numbers_and_metric_streams_are_independent():
    data = ToyGrid(n=3000)
    model = ToySeedModel(data, mix=rotation(3, 1, 2, 20.0))
    a = evaluate_checkpoint(model, data, metrics=["ds", "mig"], eval_cfg=CFG, seed=3)
    b = evaluate_checkpoint(model, data, metrics=["ds", "mig"], eval_cfg=CFG, seed=3)
    c = evaluate_checkpoint(model, data, metrics=["ds"], eval_cfg=CFG, seed=3)
    assert a == b and c["ds"] == a["ds"]
    assert evaluate_checkpoint(model, data, metrics=["ds"], eval_cfg=CFG, seed=4)["ds"] != a["ds"]


def test_autoencoder_full_covariance_and_no_factor_datasets():
    data = ToyGrid(n=2000)
    ae = evaluate_checkpoint(ToySeedModel(data, posterior="none"), data, metrics=["polarized"], eval_cfg=CFG,
                             seed=0)
    assert ae["active_units_mu"] == 3 and ae["kl_per_dim"] is None and ae["polarized_delta_kl"] is None
    full = evaluate_checkpoint(ToySeedModel(data, posterior="full"), data, metrics=["polarized"],
                               eval_cfg=CFG, seed=0)
    assert full["sigma2_per_dim"] == pytest.approx([0.01] * 3)


class Unlabelled:
    """The toy data seen as a dataset without generative factors (MNIST-like)."""

    num_factors, discrete = 0, []

    def __init__(self, data):
        self.split_indices, self.observations_at = data.split_indices, data.observations_at


def test_factor_metrics_are_null_without_factors():
    data = ToyGrid(n=2000)
    out = evaluate_checkpoint(ToySeedModel(data), Unlabelled(data), metrics=list(METRICS), eval_cfg=CFG, seed=0)
    assert out["dto"] == pytest.approx(0.0, abs=1e-5) and out["active_units"] == 3
    for m in ("ds", "mig", "mig_sup", "dci", "sap", "factorvae", "betavae"):
        assert all(out[k] is None for k in METRIC_KEYS[m]), m


def test_unknown_metric_is_a_clear_error():
    data = ToyGrid(n=500)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_checkpoint(ToySeedModel(data), data, metrics=["mig", "migg"], eval_cfg=CFG, seed=0)
