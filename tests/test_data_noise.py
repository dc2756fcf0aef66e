"""Dataset option `noise: ε` (thesis §4.3.3): uniform noise in [−ε, ε] fixed per stored point by data_seed.

Bounds hold exactly (float64 comparison of the float32 values), images stay in [0, 1], the noise of a point does
not depend on which other points are asked for, `observations(factors)` equals `observations_at(index)`, and the
factors, sizes and split are the base dataset's. Bad values are refused by `load` and by study validation with
the option named.
"""

from __future__ import annotations

import numpy as np
import pytest

from sweep.errors import SpecError
from sweep.spec import validate_study
from workers.data import DataError, load


def _study(**synth_lin: object) -> dict:
    return {"study": "noise_t", "storage": "/tmp/orthosweep-noise-test", "grid": {
        "dataset": ["synth_lin"], "model": ["beta_vae"], "seeds": 2},
        "overrides": {"synth_lin": {"n": 256, **synth_lin}}, "train": {"epochs": 1}}


@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_synthetic_noise_is_bounded_uniform_and_a_function_of_the_point(eps: float) -> None:
    base, noisy = load("synth_lin", n=2000), load("synth_lin", n=2000, noise=eps)
    idx = np.arange(2000)
    x, x0 = noisy.observations_at(idx), base.observations_at(idx)
    d = x.astype(np.float64) - x0
    assert np.abs(d).max() <= eps and np.abs(d).max() > 0.99 * eps
    assert abs(d.mean()) < 0.02 * eps and abs(d.std() - eps / np.sqrt(3)) < 0.02 * eps  # uniform on [−ε, ε]
    assert len(noisy) == len(base) and noisy.observation_shape == base.observation_shape
    np.testing.assert_array_equal(noisy.factors_at(idx), base.factors_at(idx))
    for part in ("train", "eval", "test"):
        np.testing.assert_array_equal(noisy.split_indices(part), base.split_indices(part))
    # a function of the factors: observations(factors) == observations_at(index); any subset, any order
    sub = np.array([1999, 3, 700, 3])
    np.testing.assert_array_equal(noisy.observations_at(sub), x[sub])
    np.testing.assert_array_equal(noisy.observations(noisy.factors_at(sub)), x[sub])
    np.testing.assert_array_equal(load("synth_lin", n=2000, noise=eps).observations_at(idx), x)  # per load
    # another data_seed: other points and other noise; the same factor values keep their noise only per seed
    other = load("synth_lin", n=2000, noise=eps, data_seed=1)
    f = base.factors_at(sub)
    assert not np.array_equal(other.observations(f), noisy.observations(f))


def test_image_noise_stays_in_the_unit_interval_and_is_subset_independent() -> None:
    base, noisy = load("dsprites"), load("dsprites", noise=0.1)
    idx = np.random.default_rng(0).choice(len(base), 96, replace=False)
    x, x0 = noisy.observations_at(idx), base.observations_at(idx)
    assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 1.0
    d = np.abs(x.astype(np.float64) - x0)
    assert d.max() <= 0.1 and d.max() > 0.099
    # binary pixels are reflected: 0 -> |u|·ε, 1 -> 1 − |u|·ε, so the mean change is ε/2
    assert abs(d.mean() - 0.05) < 0.002
    np.testing.assert_array_equal(noisy.observations_at(idx[[5, 2, 5]]), x[[5, 2, 5]])
    np.testing.assert_array_equal(noisy.observations(noisy.factors_at(idx[:9])), x[:9])
    np.testing.assert_array_equal(noisy.factors_at(idx), base.factors_at(idx))
    np.testing.assert_array_equal(noisy.split_indices("test"), base.split_indices("test"))
    assert noisy.factor_values is base.factor_values  # the base's attributes are passed through


def test_noise_tensor_bound_is_exact_even_where_float32_rounding_would_cross_it() -> None:
    from workers.data.perturbed import bounded

    rng = np.random.default_rng(1)
    x = rng.uniform(-3, 3, (20000,)).astype(np.float32)
    eps = 0.1  # not a float32 number: x + ε rounds past x ± ε for some x
    delta = np.where(rng.random(x.shape) < 0.5, eps, -eps)
    out = bounded(x, delta, eps, reflect=False)
    assert np.abs(out.astype(np.float64) - x).max() <= eps


@pytest.mark.parametrize(("options", "fragment"), [
    ({"noise": 0.0}, "option 'noise' must be positive"),
    ({"noise": -0.1}, "option 'noise' must be positive"),
    ({"noise": "a lot"}, "option 'noise' must be float"),
])
def test_bad_noise_values_name_the_option(options: dict, fragment: str) -> None:
    with pytest.raises(DataError, match=fragment):
        load("synth_lin", n=100, **options)


def test_noise_above_one_on_images_and_noise_with_perturbation_are_refused() -> None:
    with pytest.raises(DataError, match="option 'noise' must be at most 1 on images"):
        load("shapes3d", noise=1.5)
    with pytest.raises(DataError, match="'perturbation' and 'noise' exclude each other"):
        load("synth_lin", n=100, noise=0.1, perturbation="/nowhere")
    with pytest.raises(DataError, match="unknown option"):
        load("mnist", path="/nowhere", noise=0.1)  # no factors: no alterations


def test_study_validation_refuses_bad_noise_before_scheduling() -> None:
    with pytest.raises(SpecError, match=r"field 'noise' \(synth_lin/beta_vae\): option 'noise' must be positive "
                       r"\(> 0\), got -0.1"):
        validate_study(_study(noise=-0.1))
    with pytest.raises(DataError, match=r"dataset 'synth_lin': option 'noise' must be positive \(> 0\), got -0.1"):
        load("synth_lin", n=100, noise=-0.1)  # the same check, the same words, on either side
    with pytest.raises(SpecError, match="option 'noise' must be at most 1 on images"):
        validate_study({**_study(), "grid": {"dataset": ["dsprites"], "model": ["ae"], "seeds": 1},
                        "overrides": {"dsprites": {"noise": 2.0, "max_train": 64}}})


def test_noise_axis_keeps_the_run_keys_of_the_unaltered_restarts() -> None:
    plain = validate_study(_study())
    both = validate_study(_study(noise=[None, 0.1]))
    assert len(both.restarts) == 2 * len(plain.restarts)
    unaltered = [r for r in both.restarts if "noise" not in r.config.dataset_options]
    assert [r.run_key for r in unaltered] == [r.run_key for r in plain.restarts]
    assert all("perturbation" not in r.config.dataset_options for r in both.restarts)
    assert {r.config.dataset_options.get("noise") for r in both.restarts} == {None, 0.1}
