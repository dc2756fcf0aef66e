"""DCI against answers known by construction (importance matrices and tiny GBT fits)."""

import numpy as np
import pytest

from workers.metrics.dci import completeness, dci, disentanglement


def test_diagonal_importance_is_perfect():
    R = np.diag([0.3, 1.0, 2.0, 0.5, 0.1])
    assert disentanglement(R) == pytest.approx(1.0)
    assert completeness(R) == pytest.approx(1.0)


def test_duplicated_codes():
    R = np.vstack([np.eye(5), np.eye(5)])  # two identical copies of each code: 10 codes, 5 factors
    assert disentanglement(R) == pytest.approx(1.0)
    assert completeness(R) == pytest.approx(1 - np.log(2) / np.log(10))


def test_all_zero_and_uniform_importance():
    assert disentanglement(np.zeros((4, 3))) == pytest.approx(0.0, abs=1e-9)
    assert completeness(np.zeros((4, 3))) == pytest.approx(0.0, abs=1e-9)
    assert disentanglement(np.ones((4, 3))) == pytest.approx(0.0, abs=1e-9)


def test_single_factor_or_code_is_defined():
    assert disentanglement(np.array([[1.0], [2.0]])) == 1.0
    assert completeness(np.array([[1.0, 2.0]])) == 1.0


def _data(n, seed, sizes=(2, 3)):  # a binary factor costs one tree per boosting stage, 3 classes three
    rng = np.random.default_rng(seed)
    f = rng.integers(0, sizes, size=(n, len(sizes)))
    return f + rng.normal(0, 0.05, size=f.shape), f


def test_gbt_dci_of_perfect_and_rotated_codes():
    (c_tr, f_tr), (c_te, f_te) = _data(600, 0), _data(300, 1)
    perfect = dci(c_tr, f_tr, c_te, f_te, seed=0, n_jobs=1)
    assert perfect["dci_disentanglement"] > 0.95 and perfect["dci_completeness"] > 0.95
    assert perfect["dci_informativeness_test"] == pytest.approx(1.0)
    assert np.array(perfect["importance_matrix"]).shape == (2, 2)
    moved = dci(c_tr[:, ::-1] * 3.0 + 1.0, f_tr, c_te[:, ::-1] * 3.0 + 1.0, f_te, seed=0, n_jobs=1)
    assert moved["dci_disentanglement"] == pytest.approx(perfect["dci_disentanglement"], abs=1e-6)
    rot = lambda c: np.stack([c[:, 0] + c[:, 1], c[:, 0] - c[:, 1]], axis=1)  # noqa: E731
    rotated = dci(rot(c_tr), f_tr, rot(c_te), f_te, seed=0, n_jobs=1)
    assert rotated["dci_disentanglement"] < perfect["dci_disentanglement"] - 0.3


@pytest.mark.slow  # starts worker processes
def test_parallel_equals_serial_and_continuous_factors_are_binned():
    (c_tr, f_tr), (c_te, f_te) = _data(150, 2), _data(80, 3)
    serial = dci(c_tr, f_tr, c_te, f_te, seed=5, n_jobs=1)
    parallel = dci(c_tr, f_tr, c_te, f_te, seed=5, n_jobs=2)
    assert serial == parallel  # same seed per tree ensemble: processes change nothing
    cont = dci(c_tr, f_tr + 0.5, c_te, f_te + 0.5, seed=5, n_jobs=1, discrete=[False, False])
    assert cont["dci_informativeness_test"] > 0.9  # 3/4 distinct values land in distinct bins
