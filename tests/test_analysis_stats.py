"""analysis.stats against answers known by construction (planted distributions, hand-counted pairs)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import stats as S


def _bimodal(rng: np.random.Generator, n_low: int = 24, n_high: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """MIG planted in two well-separated modes; returns (values, planted labels 1 = high mode)."""
    v = np.r_[rng.normal(0.1, 0.03, n_low), rng.normal(0.75, 0.03, n_high)]
    planted = np.r_[np.zeros(n_low, int), np.ones(n_high, int)]
    perm = rng.permutation(v.size)
    return v[perm], planted[perm]


@pytest.mark.parametrize("method,kw", [("mixture", {}), ("threshold", {"threshold": 0.4})])
def test_planted_bimodal_metric_is_split_into_the_planted_groups(method: str, kw: dict) -> None:
    v, planted = _bimodal(np.random.default_rng(0))
    labels = S.split_restarts(v, method, **kw)
    assert (labels == planted).all()


def test_topk_takes_the_k_best_and_k_worst() -> None:
    v = np.array([0.5, 0.9, 0.1, np.nan, 0.3, 0.8, 0.2, 0.7, 0.6, 0.4])
    labels = S.split_restarts(v, "topk", k=3)
    assert set(np.flatnonzero(labels == S.DISENTANGLED)) == {1, 5, 7}
    assert set(np.flatnonzero(labels == S.ENTANGLED)) == {2, 6, 4}
    assert labels[3] == S.MIDDLE
    with pytest.raises(ValueError, match="at least 2k = 10"):
        S.split_restarts(v, "topk", k=5)


def test_bimodality_evidence_separates_two_modes_from_one() -> None:
    rng = np.random.default_rng(1)
    two = S.bimodality(_bimodal(rng, 40, 40)[0])
    one = S.bimodality(rng.normal(0.4, 0.1, 80))
    assert two["dip_p"] < 0.01 and two["bc"] > S.BC_BIMODAL
    assert one["dip_p"] > 0.1 and one["bc"] < S.BC_BIMODAL
    # BC of a symmetric two-point distribution tends to 1 (skew 0, excess kurtosis -2)
    assert S.bimodality(np.r_[np.zeros(500), np.ones(500)])["bc"] == pytest.approx(1.0, abs=0.01)


def test_monotone_relation_gives_rho_minus_one_and_independent_columns_small_rho() -> None:
    rng = np.random.default_rng(2)
    mig = rng.uniform(0, 1, 60)
    dto = np.exp(-3 * mig) + 0.2  # strictly decreasing in MIG, not linear
    c = S.correlations(dto, mig, n_boot=300)
    assert c["spearman"] == pytest.approx(-1.0) and c["kendall"] == pytest.approx(-1.0)
    assert c["spearman_lo"] == pytest.approx(-1.0) and c["spearman_hi"] == pytest.approx(-1.0)
    assert c["kendall_hi"] == pytest.approx(-1.0) and c["kendall_ci_method"] == "bootstrap (300 resamples)"
    assert -1.0 < c["pearson"] < -0.9 and c["spearman_p"] < 1e-10
    ind = S.correlations(rng.normal(size=2000), rng.normal(size=2000), n_boot=300)
    for m in ("spearman", "pearson", "kendall"):
        assert abs(ind[m]) < 0.08 and ind[f"{m}_lo"] < 0 < ind[f"{m}_hi"]
    assert ind["kendall_ci_method"] == "fieller" and ind["n_boot"] == 300
    small = S.correlations(rng.normal(size=100), rng.normal(size=100), n_boot=300)
    assert small["kendall_ci_method"].startswith("bootstrap")
    assert small["kendall_lo"] < small["kendall"] < small["kendall_hi"]
    assert small["kendall_hi"] - small["kendall_lo"] < 0.4


def test_vectorised_kendall_equals_scipy_with_ties() -> None:
    from scipy.stats import kendalltau

    rng = np.random.default_rng(8)
    x = rng.integers(0, 5, size=(6, 30)).astype(float)  # many ties in both
    y = x + rng.integers(0, 3, size=x.shape)
    want = [kendalltau(a, b)[0] for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(S.kendall_tau_b_rows(x, y), want, rtol=1e-12)


def test_bootstrap_ranks_equal_rankdata_with_ties() -> None:
    from scipy.stats import rankdata

    rng = np.random.default_rng(7)
    values = np.r_[rng.normal(size=40), np.zeros(5), np.ones(3)]  # ties in the original values too
    idx = rng.integers(0, values.size, size=(25, values.size))  # resampling adds more ties
    np.testing.assert_allclose(S.bootstrap_ranks(values, idx), rankdata(values[idx], axis=1))


def test_large_n_caps_the_bootstrap_then_uses_fisher_z() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=10_000)
    c = S.correlations(x, x + rng.normal(size=x.size), n_boot=1000)
    assert c["n_boot"] == 200 and c["kendall_ci_method"] == "fieller"
    x = rng.normal(size=30_000)
    big = S.correlations(x, x + rng.normal(size=x.size), n_boot=1000)
    assert big["n_boot"] == 0 and big["ci_method"].startswith("fisher-z")
    for r in (c, big):
        for m in ("spearman", "pearson", "kendall"):
            assert r[f"{m}_lo"] < r[m] < r[f"{m}_hi"] and r[f"{m}_hi"] - r[f"{m}_lo"] < 0.05
    # population Pearson of (x, x + e) with unit variances is 1/sqrt(2)
    assert big["pearson_lo"] < 2 ** -0.5 < big["pearson_hi"]


def test_cliffs_delta_and_mann_whitney_on_hand_counted_pairs() -> None:
    # x=[3,4], y=[1,2,5]: x>y in 4 pairs, x<y in 2 -> delta = 2/6
    assert S.cliffs_delta(np.array([3, 4]), np.array([1, 2, 5])) == pytest.approx(1 / 3)
    assert S.cliffs_delta(np.array([1, 2, 3]), np.array([2])) == 0.0
    r = S.compare_sets(np.array([5.0, 6, 7, 8]), np.array([1.0, 2, 3, 4]))
    assert r["cliffs_delta"] == 1.0 and r["u"] == 16.0 and r["p"] == pytest.approx(0.0286, abs=1e-3)


def test_wilson_interval_known_values() -> None:
    assert S.wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = S.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert all(math.isnan(v) for v in S.wilson_interval(0, 0))


def test_describe_quantiles_and_histogram() -> None:
    d = S.describe(np.r_[np.arange(101.0), np.nan], bins=10)
    assert d["n"] == 101 and d["mean"] == 50 and d["quantiles"][0.25] == 25 and d["quantiles"][0.95] == 95
    assert sum(d["hist_counts"]) == 101 and d["hist_edges"][0] == 0 and d["hist_edges"][-1] == 100


def _planted_runs(rng: np.random.Generator) -> pd.DataFrame:
    """Two groups; group A bimodal in MIG with DtO lower in the high mode; 3 over-pruned restarts
    (1 active unit for 2 factors) with the highest MIG of all, which must not count by default."""
    rows = []
    for cfg, bimodal in (("A", True), ("B", False)):
        for i in range(20):
            high = bimodal and i < 8
            mig = rng.normal(0.7 if high else 0.1, 0.02)
            rows.append({"study": "s", "dataset": "synth_lin", "model": "beta_vae", "config_key": cfg,
                         "run_key": f"{cfg}{i}", "mig": mig, "dto": 1 - mig + rng.normal(0, 0.01),
                         "recon": 1.0, "kl": 2.0 + high, "active_units": 2, "truth": int(high)})
    for j in range(3):
        rows.append({**rows[0], "run_key": f"P{j}", "mig": 0.99, "active_units": 1, "truth": -1})
    return pd.DataFrame(rows)


def test_restart_statistics_per_group_with_overpruning_excluded_by_default() -> None:
    df = _planted_runs(np.random.default_rng(4))
    res = {r["config_key"]: r for r in S.restart_statistics(df, method="mixture", n_factors=2)}
    a = res["A"]
    assert a["n"] == 23 and a["n_overpruned"] == 3 and a["n_used"] == 20
    truth = df[df.config_key == "A"].set_index("run_key")["truth"]
    assert all(truth[rk] == lab for rk, lab in a["labels"].items())
    assert a["n_disentangled"] == 8 and a["fraction_disentangled"] == pytest.approx(0.4)
    assert (a["fraction_lo"], a["fraction_hi"]) == pytest.approx(S.wilson_interval(8, 20))
    assert a["compare"]["dto"]["cliffs_delta"] == -1.0 and a["compare"]["kl"]["cliffs_delta"] == 1.0
    assert math.isnan(a["compare"]["recon"]["p"])  # identical values: no test, not a crash
    assert a["bimodality"]["dip_p"] < 0.05
    kept = {r["config_key"]: r for r in S.restart_statistics(df, method="topk", k=3, n_factors=2,
                                                             exclude_overpruned=False)}["A"]
    assert kept["n_used"] == 23 and {rk for rk, lab in kept["labels"].items() if lab == 1} == {"P0", "P1", "P2"}
    small = S.restart_statistics(df[df.run_key.isin(["A0", "A1", "A10", "A11", "A12"])], n_factors=2)[0]
    assert small["k"] == 2 and "k reduced to 2" in small["note"]  # 5 restarts: 2 best (A0, A1) vs 2 worst
    assert {rk for rk, lab in small["labels"].items() if lab == 1} == {"A0", "A1"}


def test_correlation_table_per_group_and_pooled() -> None:
    df = _planted_runs(np.random.default_rng(5))
    df["ds"] = -df["dto"]  # exactly monotone
    t = S.correlation_table(df, metrics=("ds", "mig", "sap"), n_boot=100)
    assert set(t["config_key"]) == {"A", "B", "(pooled)"} and set(t["metric"]) == {"ds", "mig"}
    assert t.loc[t.metric == "ds", "spearman"].tolist() == pytest.approx([-1.0] * 3)


def test_paired_test_known_answers() -> None:
    rng = np.random.default_rng(0)
    before = rng.uniform(0.5, 1.0, 10)
    drop = S.paired_test(before, before - rng.uniform(0.01, 0.3, 10))  # every pair drops
    assert drop["n"] == 10 and drop["n_greater"] == 10
    assert drop["wilcoxon_p"] == pytest.approx(2.0 ** -10) and drop["sign_p"] == pytest.approx(2.0 ** -10)
    rise = S.paired_test(before, before + 0.1)  # the other direction: one-sided p near 1
    assert rise["wilcoxon_p"] > 0.99 and rise["sign_p"] == pytest.approx(1.0)
    d = np.array([0.1, -0.1, 0.2, -0.2, 0.3, -0.3, 0.4, -0.4, 0.5, -0.5])  # symmetric differences
    sym = S.paired_test(before, before - d)
    assert sym["wilcoxon_p"] > 0.4 and sym["sign_p"] > 0.5 and sym["mean_diff"] == pytest.approx(0.0)
    few = S.paired_test(np.array([1.0, 2.0, 3.0, 4.0]), np.zeros(4))  # four pairs cannot be significant
    assert few["wilcoxon_p"] == pytest.approx(1 / 16) and few["wilcoxon_p"] > S.SIGNIFICANCE
    same = S.paired_test(np.ones(5), np.ones(5))
    assert (same["wilcoxon_p"], same["sign_p"], same["n_equal"]) == (1.0, 1.0, 5)
    assert math.isnan(S.paired_test(np.array([np.nan]), np.array([1.0]))["wilcoxon_p"])
