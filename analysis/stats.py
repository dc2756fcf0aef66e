"""Restart statistics (design.md §8): pure functions on arrays and DataFrames, no I/O.

The unit of observation is one restart (one row of the `runs` view, or of `checkpoints` at one epoch).

Distribution per group     `describe`: n, mean, std (ddof=1), quantiles, histogram
Entangled vs disentangled  `split_restarts` by a metric (topk | threshold | mixture) or by the embedding
                           label (aligned | mixed | polar, thesis §4.3.6: `EMBEDDING_SPLITS`), `bimodality`
                           (Hartigan's dip test p-value, bimodality coefficient), `compare_sets`
                           (Mann–Whitney U, Cliff's δ), `wilson_interval` for the fraction disentangled
Embeddings                 `embedding_labels`, `embedding_table`: aligned / linearly mixed / polar restarts
                           per group
Over-pruning               `overpruned`: fewer active units than ground-truth factors (excluded by default)
Paired restarts            `paired_test`: one-sided Wilcoxon signed-rank and sign test on per-seed differences
Correlations               `correlations`: Spearman, Pearson, Kendall with p-values and 95% intervals
Study level                `restart_statistics`, `correlation_table`: the above per group and pooled
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

from workers.metrics.embedding import ALIGNED, MIXED, POLAR
from workers.metrics.registry import headline_columns

DISENTANGLED, ENTANGLED, MIDDLE = 1, 0, -1
SplitMethod = Literal["topk", "threshold", "mixture", "aligned", "mixed", "polar"]
SPLIT_METHODS = ("topk", "threshold", "mixture", "aligned", "mixed", "polar")
POLAR_COLUMN = "polar_fraction"  # the embedding metric's share of factor pairs embedded in polar coordinates
MIXED_COLUMN = "mixed_fraction"  # ... linearly mixed (absent from rows evaluated before the three labels)
# A restart's embedding label: polar when some factor pair is polar, else linearly mixed when some pair is,
# else aligned; rows evaluated before the three labels know only polar vs NOT_POLAR.
NOT_POLAR = "not polar"
# split by the embedding: (labels on the disentangled side, labels on the entangled side); others left out
EMBEDDING_SPLITS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "aligned": (frozenset({ALIGNED}), frozenset({MIXED, POLAR})),
    "mixed": (frozenset({ALIGNED}), frozenset({MIXED})),
    "polar": (frozenset({ALIGNED, MIXED, NOT_POLAR}), frozenset({POLAR})),
}
MIN_BOOT = 200  # fewer bootstrap resamples than this: normal-approximation intervals instead
BC_BIMODAL = 5 / 9  # bimodality coefficient of the uniform distribution: above it suggests two modes

COMPARE_COLUMNS = ("dto", "recon", "kl", "active_units")
DISENTANGLEMENT_METRICS = headline_columns("disentanglement")  # ds, mig, mig_sup, dci_disentanglement, ...
# a group is a configuration (config_key), labelled by analysis.groups; columns a frame lacks are skipped
GROUP_BY = ("study", "dataset", "model", "group", "config_key")


# ------------------------------------------------------------------------------------------------ per group

def describe(values: np.ndarray, quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95),
             bins: int = 20) -> dict[str, Any]:
    """n, mean, std (ddof=1; NaN for n<2), min, max, quantiles and a `bins`-bin histogram of finite values.

    values: (n,) floats; NaN entries (metric not recorded) are ignored.
    """
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    out: dict[str, Any] = {"n": int(v.size)}
    if v.size == 0:
        return {**out, "mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan,
                "quantiles": {q: math.nan for q in quantiles}, "hist_counts": [], "hist_edges": []}
    counts, edges = np.histogram(v, bins=bins)
    return {**out, "mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else math.nan,
            "min": float(v.min()), "max": float(v.max()),
            "quantiles": {q: float(x) for q, x in zip(quantiles, np.quantile(v, quantiles), strict=True)},
            "hist_counts": counts.tolist(), "hist_edges": edges.tolist()}


def group_table(df: pd.DataFrame, metrics: Sequence[str], by: Sequence[str] = GROUP_BY) -> pd.DataFrame:
    """One row per group: n and, per metric, mean, std, median, q05, q95 (over restarts, NaN ignored)."""
    metrics = [m for m in metrics if m in df]
    g = df.groupby(list(by), dropna=False, sort=True)
    parts = {"n": g.size()}
    for m in metrics:
        s = g[m]
        parts.update({f"{m}_mean": s.mean(), f"{m}_std": s.std(ddof=1), f"{m}_median": s.median(),
                      f"{m}_q05": s.quantile(0.05), f"{m}_q95": s.quantile(0.95)})
    return pd.DataFrame(parts).reset_index()


# ------------------------------------------------------------------------------------------------ splitting

def split_restarts(values: np.ndarray, method: SplitMethod = "topk", *, k: int = 4,
                   threshold: float | None = None, seed: int = 0) -> np.ndarray:
    """Label each restart DISENTANGLED (1), ENTANGLED (0) or MIDDLE (-1, topk only) by a metric.

    values: (n,) metric per restart (higher = more disentangled; NaN -> MIDDLE).
    topk:      the k highest are disentangled, the k lowest entangled (thesis: 4 vs 4); needs n >= 2k.
    threshold: disentangled iff value >= threshold.
    mixture:   a two-component 1-D Gaussian mixture; restarts of the higher-mean component are disentangled.
    polar:     values are `polar_fraction` (the embedding metric): restarts with no factor pair embedded in
               polar coordinates (value 0) are DISENTANGLED, polar ones (value > 0) ENTANGLED.
    (The embedding splits of `restart_statistics`, aligned | mixed | polar, split by `embedding_labels`.)
    """
    v = np.asarray(values, float)
    labels = np.full(v.shape, MIDDLE, dtype=np.int64)
    ok = np.flatnonzero(np.isfinite(v))
    if method == "topk":
        if k < 1:
            raise ValueError(f"topk split: k must be >= 1, got {k}")
        if ok.size < 2 * k:
            raise ValueError(f"topk split needs at least 2k = {2 * k} restarts with the metric, got {ok.size}")
        order = ok[np.argsort(v[ok], kind="stable")]
        labels[order[:k]] = ENTANGLED
        labels[order[-k:]] = DISENTANGLED
    elif method == "threshold":
        if threshold is None:
            raise ValueError("threshold split: give a threshold value")
        labels[ok] = np.where(v[ok] >= threshold, DISENTANGLED, ENTANGLED)
    elif method == "mixture":
        labels[ok] = _mixture_labels(v[ok], seed)
    elif method == "polar":
        labels[ok] = np.where(v[ok] > 0, ENTANGLED, DISENTANGLED)
    elif method in EMBEDDING_SPLITS:
        raise ValueError(f"the {method} split goes by embedding labels, not values: use restart_statistics")
    else:
        raise ValueError(f"unknown split method {method!r}; allowed: {', '.join(SPLIT_METHODS)}")
    return labels


def _mixture_labels(v: np.ndarray, seed: int) -> np.ndarray:
    if v.size < 4 or np.ptp(v) == 0:
        raise ValueError(f"mixture split needs at least 4 distinct-valued restarts, got {v.size}")
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(2, n_init=3, random_state=seed).fit(v[:, None])
    comp = gm.predict(v[:, None])
    high = int(np.argmax(gm.means_.ravel()))
    return np.where(comp == high, DISENTANGLED, ENTANGLED)


def bimodality(values: np.ndarray) -> dict[str, float]:
    """Hartigan's dip statistic and p-value (diptest), and the bimodality coefficient
    BC = (g² + 1) / (κ + 3(n−1)²/((n−2)(n−3))) with bias-corrected skewness g and excess kurtosis κ;
    BC > 5/9 suggests bimodality. NaN where n is too small (dip: n < 4; BC: n < 4)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    n = v.size
    if n < 4 or np.ptp(v) == 0:
        return {"dip": math.nan, "dip_p": math.nan, "bc": math.nan}
    import diptest

    dip, p = diptest.diptest(v)
    g = sps.skew(v, bias=False)
    kappa = sps.kurtosis(v, fisher=True, bias=False)
    bc = (g ** 2 + 1) / (kappa + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    return {"dip": float(dip), "dip_p": float(p), "bc": float(bc)}


def cliffs_delta(x: np.ndarray, y: np.ndarray) -> float:
    """Cliff's δ = P(X > Y) − P(X < Y) over all pairs, in [−1, 1]; computed from ranks in O(n log n)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size == 0 or y.size == 0:
        return math.nan
    ys = np.sort(y)
    greater = np.searchsorted(ys, x, side="left").sum()  # pairs with y < x
    less = (y.size - np.searchsorted(ys, x, side="right")).sum()  # pairs with y > x
    return float((greater - less) / (x.size * y.size))


def compare_sets(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Disentangled set x vs entangled set y: means, medians, two-sided Mann–Whitney U (U of x) and p,
    Cliff's δ (positive: x tends to be larger). NaN entries are dropped; NaN results when a side is empty."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    out = {"n_x": int(x.size), "n_y": int(y.size),
           "mean_x": float(x.mean()) if x.size else math.nan, "mean_y": float(y.mean()) if y.size else math.nan,
           "median_x": float(np.median(x)) if x.size else math.nan,
           "median_y": float(np.median(y)) if y.size else math.nan,
           "u": math.nan, "p": math.nan, "cliffs_delta": cliffs_delta(x, y)}
    if x.size and y.size and not (np.ptp(np.r_[x, y]) == 0):
        res = sps.mannwhitneyu(x, y, alternative="two-sided")
        out.update(u=float(res.statistic), p=float(res.pvalue))
    return out


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion successes/n (NaN, NaN when n = 0)."""
    if n == 0:
        return math.nan, math.nan
    z = sps.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


SIGNIFICANCE = 0.05  # a claim "holds" only when its one-sided paired test gives p below this


def paired_test(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """One-sided paired tests of "x tends to exceed y" over pairs (x_i, y_i) (e.g. MIG on the original and on
    the modified data of the same seed).

    Pairs with a NaN are dropped. Returns n (pairs), n_greater / n_less / n_equal, mean and median of x − y,
    `wilcoxon_p` (Wilcoxon signed-rank, alternative "greater", zero differences dropped; exact for small n
    without ties, scipy's normal approximation otherwise) and `sign_p` (the sign test: binomial
    P(≥ n_greater of n_greater + n_less | ½)). Both are 1.0 when no pair differs and NaN without pairs.
    All n pairs drop: wilcoxon_p = sign_p = 2^-n (n = 10: 0.00098); n <= 4 can never reach p < 0.05.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    d = x[keep] - y[keep]
    out: dict[str, Any] = {"n": int(d.size), "n_greater": int((d > 0).sum()), "n_less": int((d < 0).sum()),
                           "n_equal": int((d == 0).sum()), "mean_diff": float(d.mean()) if d.size else math.nan,
                           "median_diff": float(np.median(d)) if d.size else math.nan,
                           "wilcoxon_p": math.nan, "sign_p": math.nan}
    if d.size == 0:
        return out
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return {**out, "wilcoxon_p": 1.0, "sign_p": 1.0}
    out["wilcoxon_p"] = float(sps.wilcoxon(nonzero, alternative="greater").pvalue)
    out["sign_p"] = float(sps.binomtest(out["n_greater"], nonzero.size, 0.5, alternative="greater").pvalue)
    return out


def overpruned(active_units: np.ndarray, n_factors: np.ndarray | int) -> np.ndarray:
    """True where a restart kept fewer active latent units than the data has ground-truth factors.

    Unknown active units (NaN) or datasets without factors (n_factors = 0) are never flagged.
    """
    a = np.asarray(active_units, float)
    f = np.broadcast_to(np.asarray(n_factors, float), a.shape)
    return np.isfinite(a) & (f > 0) & (a < f)


# ------------------------------------------------------------------------------------------------ correlations

def bootstrap_ranks(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties share their mean rank) of each bootstrap resample values[idx[b]].

    values: (n,); idx: (B, n) resample indices. Equal to rankdata(values[idx], axis=1) but without a sort
    per resample: every drawn value is one of the n originals, so counting draws per distinct value and a
    cumulative sum give the ranks in O(B·n).
    """
    uniq, uid = np.unique(values, return_inverse=True)
    u = uniq.size
    b = idx.shape[0]
    ids = uid[idx]  # (B, n) index of each drawn value among the distinct values, in increasing order
    rows = np.arange(b)[:, None]
    counts = np.bincount((ids + rows * u).ravel(), minlength=b * u).reshape(b, u)
    before = np.cumsum(counts, axis=1) - counts
    return before[rows, ids] + (counts[rows, ids] + 1) / 2


def kendall_tau_b_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair of (B, n) arrays, by pairwise signs (O(B·n²) memory in chunks).

    tau_b = (concordant − discordant) / sqrt((n0 − n1)(n0 − n2)), n0 = n(n−1)/2 pairs, n1/n2 the pairs
    tied in x/y; NaN where a row is constant. Matches scipy.stats.kendalltau (variant 'b').
    """
    b, n = x.shape
    out = np.empty(b)
    n0 = n * (n - 1) / 2
    chunk = max(1, 2_000_000 // (n * n))
    for i in range(0, b, chunk):
        sx = np.sign(x[i:i + chunk, :, None] - x[i:i + chunk, None, :]).astype(np.int8)
        sy = np.sign(y[i:i + chunk, :, None] - y[i:i + chunk, None, :]).astype(np.int8)
        s = (sx.astype(np.int32) * sy).sum(axis=(1, 2)) / 2
        tx = ((sx == 0).sum(axis=(1, 2)) - n) / 2  # off-diagonal zero signs = tied pairs, counted twice
        ty = ((sy == 0).sum(axis=(1, 2)) - n) / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i:i + chunk] = s / np.sqrt((n0 - tx) * (n0 - ty))
    return out


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of (B, n) arrays (NaN where a row is constant)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    den = np.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * yc).sum(-1) / den


def correlations(x: np.ndarray, y: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                 max_boot_elements: int = 2_000_000, max_kendall_elements: int = 4_000_000) -> dict[str, Any]:
    """Spearman, Pearson and Kendall (tau-b) between x and y over restarts, with p-values and 95% CIs.

    x, y: (n,) paired values; pairs with a NaN are dropped. CIs are bootstrap percentile intervals over
    resampled restarts with up to n_boot resamples, capped so that n × resamples <= max_boot_elements;
    when fewer than MIN_BOOT resamples fit (n > 10^4 by default) the intervals are Fisher-z normal
    approximations (variances 1.06/(n−3) Spearman, 1/(n−3) Pearson, 0.437/(n−4) Kendall; Fieller,
    Hartley & Pearson 1957), accurate at such n. Kendall's bootstrap is pairwise (n² per resample) and
    needs MIN_BOOT resamples within max_kendall_elements (n up to ~140). `n_boot`, `ci_method` and
    `kendall_ci_method` say what was done.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = x.size
    out: dict[str, Any] = {"n": int(n), "n_boot": 0, "ci_method": "none", "kendall_ci_method": "none"}
    for m in ("spearman", "pearson", "kendall"):
        out.update({m: math.nan, f"{m}_p": math.nan, f"{m}_lo": math.nan, f"{m}_hi": math.nan})
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    s, p = sps.spearmanr(x, y)
    out.update(spearman=float(s), spearman_p=float(p))
    r, p = sps.pearsonr(x, y)
    out.update(pearson=float(r), pearson_p=float(p))
    t, p = sps.kendalltau(x, y)
    out.update(kendall=float(t), kendall_p=float(p))
    b = int(min(n_boot, max_boot_elements // n))
    if n_boot > 0 and b >= MIN_BOOT:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(b, n))
        sp, pe = np.empty(b), np.empty(b)
        chunk = max(1, 1_000_000 // n)
        for i in range(0, b, chunk):
            ii = idx[i:i + chunk]
            pe[i:i + chunk] = _pearson_rows(x[ii], y[ii])
            sp[i:i + chunk] = _pearson_rows(bootstrap_ranks(x, ii), bootstrap_ranks(y, ii))
        out.update(n_boot=b, ci_method=f"bootstrap ({b} resamples)")
        for m, vals in (("spearman", sp), ("pearson", pe)):
            out[f"{m}_lo"], out[f"{m}_hi"] = _percentile_ci(vals)
        b_kendall = min(b, max_kendall_elements // (n * n))
        if b_kendall >= MIN_BOOT:
            kt = kendall_tau_b_rows(x[idx[:b_kendall]], y[idx[:b_kendall]])
            out["kendall_lo"], out["kendall_hi"] = _percentile_ci(kt)
            out["kendall_ci_method"] = f"bootstrap ({b_kendall} resamples)"
    if n > 4:  # normal approximations on Fisher's z where the bootstrap does not fit the budget
        for m, var in (("spearman", 1.06 / (n - 3)), ("pearson", 1 / (n - 3)), ("kendall", 0.437 / (n - 4))):
            if math.isnan(out[f"{m}_lo"]):
                out[f"{m}_lo"], out[f"{m}_hi"] = _fisher_ci(out[m], var)
        if out["ci_method"] == "none":
            out["ci_method"] = "fisher-z (Fieller et al. variances)"
        if out["kendall_ci_method"] == "none":
            out["kendall_ci_method"] = "fieller"
    return out


def _fisher_ci(r: float, var: float) -> tuple[float, float]:
    """95% interval tanh(atanh(r) ± 1.96·sqrt(var))."""
    z, half = math.atanh(min(max(r, -0.999999), 0.999999)), 1.96 * math.sqrt(var)
    return math.tanh(z - half), math.tanh(z + half)


def _percentile_ci(vals: np.ndarray) -> tuple[float, float]:
    v = vals[np.isfinite(vals)]
    if v.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(v, [0.025, 0.975])
    return float(lo), float(hi)


# ------------------------------------------------------------------------------------------------ study level

def _groups(df: pd.DataFrame, by: Sequence[str]):
    by = [c for c in by if c in df]
    if not by or df.empty:
        yield {}, df
        return
    for key, sub in df.groupby(by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        yield dict(zip(by, key, strict=True)), sub


def restart_statistics(df: pd.DataFrame, *, metric: str = "mig", method: SplitMethod = "topk", k: int = 4,
                       threshold: float | None = None, exclude_overpruned: bool = True,
                       n_factors: pd.Series | np.ndarray | None = None,
                       compare: Sequence[str] = COMPARE_COLUMNS, by: Sequence[str] = GROUP_BY,
                       seed: int = 0) -> list[dict[str, Any]]:
    """Entangled-vs-disentangled statistics per group of restarts (one row of `df` per restart).

    n_factors: ground-truth factor count per row (aligned with df) for the over-pruning flag; None: no
    restart is flagged. A topk split of a group with fewer than 2k restarts uses k = n // 2 (recorded in
    `k` and `note`). The embedding methods (aligned | mixed | polar) split by each restart's
    `embedding_labels` instead of `metric` (EMBEDDING_SPLITS: aligned = aligned vs linearly mixed or polar;
    mixed = aligned vs linearly mixed, polar restarts left out; polar = not polar vs polar; the first set is
    the disentangled side; `split_by` is then "embedding"), still describe `metric` and compare it too.
    Returns one dict per group: the group key, counts (n, n_overpruned, n_used), `describe` of the metric,
    `bimodality`, the split counts, the fraction disentangled with its Wilson 95% interval (every split but
    topk, which fixes it by construction), and `compare_sets` for each column in `compare` (x = disentangled,
    y = entangled), or `error` when the group cannot be split (too few restarts, or no embedding recorded
    for an embedding split).
    """
    df = df.reset_index(drop=True)
    flags = (overpruned(df.get("active_units", pd.Series(np.nan, index=df.index)).to_numpy(float),
                        np.asarray(n_factors, float)) if n_factors is not None else np.zeros(len(df), bool))
    df = df.assign(_overpruned=flags)
    results = []
    for key, sub in _groups(df, by):
        used = sub[~sub["_overpruned"]] if exclude_overpruned else sub
        v = used[metric].to_numpy(float) if metric in used else np.full(len(used), np.nan)
        row: dict[str, Any] = {**key, "metric": metric, "method": method, "n": len(sub),
                               "n_overpruned": int(sub["_overpruned"].sum()), "n_used": len(used),
                               "describe": describe(v), "bimodality": bimodality(v)}
        k_used = k
        if method == "topk" and 2 <= np.isfinite(v).sum() < 2 * k:  # small groups: as many as there are
            k_used = int(np.isfinite(v).sum()) // 2
            row["note"] = f"k reduced to {k_used}: only {int(np.isfinite(v).sum())} restarts with {metric}"
        row["k"] = k_used
        by_embedding = method in EMBEDDING_SPLITS
        row["split_by"] = "embedding" if by_embedding else metric
        if by_embedding:
            named = embedding_labels(used)
            if named.isna().all():
                row["error"] = "no embedding recorded in this group (compute the embedding metric)"
                results.append(row)
                continue
            dis_set, ent_set = EMBEDDING_SPLITS[method]
            labels = np.where(named.isin(dis_set), DISENTANGLED, np.where(named.isin(ent_set), ENTANGLED, MIDDLE))
        else:
            sv = used[metric].to_numpy(float) if metric in used else np.full(len(used), np.nan)
            try:
                labels = split_restarts(sv, method, k=k_used, threshold=threshold, seed=seed)
            except ValueError as e:
                row["error"] = str(e)
                results.append(row)
                continue
        dis, ent = labels == DISENTANGLED, labels == ENTANGLED
        row.update(n_disentangled=int(dis.sum()), n_entangled=int(ent.sum()))
        if method != "topk":
            lo, hi = wilson_interval(int(dis.sum()), int(dis.sum() + ent.sum()))
            row.update(fraction_disentangled=dis.sum() / max(1, dis.sum() + ent.sum()), fraction_lo=lo,
                       fraction_hi=hi)
        compared = (metric, *(c for c in compare if c != metric)) if by_embedding else tuple(compare)
        row["compare"] = {c: compare_sets(used[c].to_numpy(float)[dis], used[c].to_numpy(float)[ent])
                          for c in compared if c in used}
        row["labels"] = dict(zip(used["run_key"], labels.tolist(), strict=True)) if "run_key" in used else {}
        results.append(row)
    return results


def embedding_labels(df: pd.DataFrame) -> pd.Series:
    """Per restart, from the embedding metric's columns: 'polar' (polar_fraction > 0: some factor pair
    embedded as radius and angle), else 'linearly mixed' (mixed_fraction > 0: some pair's latents move with
    both factors), else 'aligned' (every pair one factor per latent axis); NOT_POLAR for rows evaluated
    before the three labels (polar_fraction = 0, no mixed_fraction); None where nothing is recorded."""
    pf = df[POLAR_COLUMN].to_numpy(float) if POLAR_COLUMN in df else np.full(len(df), np.nan)
    mf = df[MIXED_COLUMN].to_numpy(float) if MIXED_COLUMN in df else np.full(len(df), np.nan)
    out = np.where(np.isnan(mf), NOT_POLAR, np.where(mf > 0, MIXED, ALIGNED)).astype(object)
    out = np.where(pf > 0, POLAR, out)
    out[np.isnan(pf)] = None
    return pd.Series(out, index=df.index, dtype=object)


EMBEDDING_CLASSES = {"aligned": ALIGNED, "mixed": MIXED, "polar": POLAR, "not_polar": NOT_POLAR}


def embedding_table(df: pd.DataFrame, by: Sequence[str] = GROUP_BY, metric: str = "mig") -> pd.DataFrame:
    """Restarts per embedding label per group: n, n_aligned, n_mixed, n_polar, n_not_polar (evaluated before
    the three labels), n_unknown (embedding not recorded); the means over restarts of polar_fraction,
    mixed_fraction, aligned_fraction, the two residuals and the axis purity; and `metric`'s mean over the
    restarts of each label (<metric>_aligned_mean, <metric>_mixed_mean, <metric>_polar_mean); NaN where
    nothing is recorded. Empty when no restart has the embedding metric."""
    if POLAR_COLUMN not in df or df[POLAR_COLUMN].isna().all():
        return pd.DataFrame()
    df = df.assign(_label=embedding_labels(df))
    rows = []
    for key, sub in _groups(df, by):
        row = {**key, "n": len(sub),
               **{f"n_{name}": int((sub["_label"] == label).sum()) for name, label in EMBEDDING_CLASSES.items()},
               "n_unknown": int(sub["_label"].isna().sum())}
        for c in (POLAR_COLUMN, MIXED_COLUMN, "aligned_fraction", "embedding_residual_cartesian",
                  "embedding_residual_polar", "embedding_axis_purity"):
            row[f"{c}_mean"] = float(sub[c].mean()) if c in sub and sub[c].notna().any() else math.nan
        for name in ("aligned", "mixed", "polar"):
            v = sub.loc[sub["_label"] == EMBEDDING_CLASSES[name], metric] if metric in sub else pd.Series(dtype=float)
            row[f"{metric}_{name}_mean"] = float(v.mean()) if v.notna().any() else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def correlation_table(df: pd.DataFrame, *, x: str = "dto", metrics: Sequence[str] = DISENTANGLEMENT_METRICS,
                      by: Sequence[str] = GROUP_BY, pooled: bool = True, n_boot: int = 1000,
                      seed: int = 0) -> pd.DataFrame:
    """`correlations` between column x and each metric (those with any value), per group and pooled.

    Returns one row per (group, metric) with the group columns ('(pooled)' in them for the pooled rows).
    """
    metrics = [m for m in metrics if m in df and df[m].notna().any()]
    rows = []
    parts = list(_groups(df, by))
    if pooled and len(parts) > 1:
        parts.append(({c: "(pooled)" for c in by if c in df}, df))
    for key, sub in parts:
        for m in metrics:
            rows.append({**key, "x": x, "metric": m,
                         **correlations(sub[x].to_numpy(float), sub[m].to_numpy(float), n_boot=n_boot, seed=seed)})
    return pd.DataFrame(rows)
