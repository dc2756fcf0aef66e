"""Aligned, linearly mixed and polar embeddings of factor pairs (thesis §4.3.6, Figs. 4.10–4.11).

The thesis found two ways a β-VAE embeds a pair of factors (Shapes3D wall hue and orientation) in two
latents: *cartesian* (each factor embedded mostly in a single coordinate) and *polar* (one factor is the
radius and the other the angle of a pair of latents). A third way is the one disentanglement metrics
score lowest: the two factors linearly mixed across the latents (a rotated code: MIG ≈ 0 at 45°). This
module labels each pair *aligned* (the thesis's cartesian: one factor per latent axis), *linearly mixed*
or *polar*, from the encodings of a grid over the two factors with every other factor fixed at a base
point.

Per grid (one pair, one base point; `classify_grid`):
1. The plane: the codes (n, d) are centred, projected on their two principal directions (PCA) and
   whitened (each direction divided by its standard deviation; the second floored at MIN_SPREAD = 1/20 of
   the first, so the noise of an essentially one-dimensional code is not blown up). The evidence then does
   not depend on which latents carry the pair, on their order, on their scales, or on any invertible
   linear mixing of the latents that carry it (while the pair's plane is no thinner than 20:1).
   `plane_fraction` is the share of the grid's code variance in that plane (evidence only).
2. Cartesian model, "cartesian after alignment": y = c + α(f_a)·e₁ + β(f_b)·e₂ with two fixed directions
   e₁, e₂ (any angle between them) and one free value per factor level — straight, parallel iso-lines: an
   affine map of the factor grid after an arbitrary reparametrisation of each factor (so categorical
   factors, and codes nonlinear in each factor's value, are allowed). On the full balanced grid
   its least-squares fit is closed form: the additive (two-way) decomposition, each factor's level effects
   projected on their principal line.
   `cartesian_residual` = SS of (interaction + off-line parts of both factors' effects) / SS of the plane.
3. Polar model: y = c + A·r(f_a)·(cos φ(f_b), sin φ(f_b)) with a centre c, a positive-definite 2×2 shape
   A (an ellipse: polar up to a linear map of the plane, so rescaling a latent keeps a polar code polar)
   and one radius per level of f_a and one angle per level of f_b. c and A come from an algebraic fit of
   concentric similar ellipses, one per level of the radius factor (linear least squares; the common-centre
   circle fit is tried too, the better kept); radii and angles then by two alternating least-squares
   passes. Both role assignments (which factor is the radius) are tried, the better kept.
   `polar_residual` = SS of the residual / SS of the plane, clipped to [0, 1]; 1 when no fit exists.
   `radial_share` = share of the fitted polar code's variance (in the ellipse's circle coordinates) that the
   radius carries; near 0 means the radius factor does nothing in the plane (e.g. it lives in a third
   latent), near 1 that the angle factor does nothing.
Both residuals are fractions of the (whitened) plane's variance in [0, 1] (0 = exact fit).

4. Axis purity (on the raw codes, not the plane: it asks about the latent axes): per latent k, S_a[k] =
   the variance of code k over the levels of f_a with f_b fixed, averaged over f_b (and S_b[k] the same
   for f_b); `axis_purity` = Σ_k max(S_a[k], S_b[k]) / Σ_k (S_a[k] + S_b[k]) in [0.5, 1]: 1 when no latent
   moves with both factors, cos²θ for an aligned pair of equal spreads rotated by θ ≤ 45° (0.5 at 45°). It does
   not depend on the order of the latents or on a common scale; each latent weighs by its variance in latent
   units (a VAE's prior standard deviations), so an inactive latent weighs nothing. 1 without variance.

Rule (per pair, on the evidence averaged over base points; `label_from_evidence`), in this order:
    polar           iff polar_residual <= POLAR_MAX_RESIDUAL (0.1)
                        and cartesian_residual − polar_residual >= MARGIN (0.1)
                        and MIN_SHARE (0.002) <= radial_share <= 1 − MIN_SHARE
    aligned         iff axis_purity >= ALIGNED_MIN_PURITY (0.9): one factor per latent axis (the thesis's
                        *cartesian*): an aligned pair rotated by up to 18.4° (cos² = 0.9) is aligned
    linearly mixed  otherwise: some latents move with both factors along straight iso-lines (a rotated or
                    sheared pair; `cartesian_residual` says how straight), or in no structure either
                    model explains (`cartesian_residual` near 1 says so)
Calibration, on 16 × 16 grids (tests/test_metrics_embedding.py, `test_three_labels_on_known_embeddings`):
aligned axis_purity 1.0; rotated by 10° 0.97, 20° 0.88, 30° 0.75, 45° 0.5; polar codes at radius 1..2 have
radial_share 0.06 (half turn) to 0.17 (quarter turn) and a thin annulus (radius 0.85..1.15, 30% of the
mean) 0.008 over a full turn, hence MIN_SHARE = 0.002; a cyclic factor on a circle of two latents with the
other factor in a third latent has radial_share 0 (the radius carries nothing: not polar) and axis purity 1
(no latent moves with both factors: aligned, though the cyclic factor spans two latents).
A polar code that bends little (an annulus sector of small angle far from its centre) is locally straight
and is not labelled polar: the margin asks that at least a tenth of the plane's variance be the bending that
only the polar model explains (radius 1..2 over a 16×16 grid: a quarter turn is polar, a 29° sector is not;
with radius ≈ one latent and angle ≈ the other it is aligned, axis purity 0.92).

Per restart (`embedding_scores`): polar_pairs, aligned_pairs, mixed_pairs (int: pairs with each label),
polar_fraction, aligned_fraction, mixed_fraction (those / pairs evaluated), embedding_residual_cartesian /
embedding_residual_polar / embedding_axis_purity (means over pairs), embedding_per_pair (polar minus
cartesian residual per pair, negative = polar-like, in the order of `factor_pairs`).

`embedding_score(encode, dataset, ...)` builds the grids from a ground-truth dataset (design of the cost
in its docstring) and encodes them; everything else here is pure numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from workers.metrics.sampling import CHUNK_OBSERVATIONS, encode_factors

ALIGNED, MIXED, POLAR = "aligned", "linearly mixed", "polar"
LABELS = (ALIGNED, MIXED, POLAR)
POLAR_MAX_RESIDUAL = 0.1
MARGIN = 0.1
MIN_SHARE = 0.002
ALIGNED_MIN_PURITY = 0.9
MIN_SPREAD = 0.05  # whitening: a principal direction thinner than this × the main one is not blown up further
MIN_LEVELS = 3  # fewer levels per factor: a grid cannot tell the models apart (any 2×2 grid fits both)

MAX_LEVELS = 16  # grid values per factor: at most 16 × 16 points per pair and base point
MAX_PAIRS = 15  # factor pairs evaluated, the first in lexicographic order (all pairs of ≤ 6 factors)
BASE_POINTS = 3  # base points (values of the other factors) per pair; 1 when there are no other factors
CONTINUOUS_QUANTILES = (0.01, 0.99)  # a continuous factor's grid spans these quantiles of its observed values


# ------------------------------------------------------------------------------------------------ one grid

def _levels(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Level index (n,) of each value and the number of distinct values."""
    uniq, inv = np.unique(np.asarray(values), return_inverse=True)
    return inv.ravel(), uniq.size


def _plane(codes: np.ndarray) -> tuple[np.ndarray, float]:
    """The whitened PCA plane of the codes: (y (n, 2), share of the codes' variance in the plane).

    y = centred codes on their two principal directions, each divided by its standard deviation, the second
    floored at MIN_SPREAD × the first's; all zeros when the codes do not vary.
    """
    x = np.asarray(codes, np.float64)
    x = x - x.mean(axis=0)
    if x.shape[1] < 2:
        x = np.concatenate([x, np.zeros((x.shape[0], 2 - x.shape[1]))], axis=1)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    total = float((s ** 2).sum())
    scale = float(np.sqrt(np.mean(np.asarray(codes, np.float64) ** 2))) + 1.0
    if s[0] <= 1e-10 * scale * np.sqrt(len(x)):
        return np.zeros((len(x), 2)), 1.0
    spread = np.array([s[0], max(s[1], MIN_SPREAD * s[0])]) / np.sqrt(len(x))
    return (x @ vt[:2].T) / spread, float((s[:2] ** 2).sum()) / total


def _line_loss(effects: np.ndarray) -> float:
    """Squared distance of centred level effects (m, 2) to their best line through 0 (2nd singular value²)."""
    s = np.linalg.svd(effects, compute_uv=False)
    return float(s[1] ** 2) if s.size > 1 else 0.0


def cartesian_fit(y: np.ndarray, a: np.ndarray, b: np.ndarray, na: int, nb: int) -> float:
    """Residual SS of the cartesian model on a full balanced grid (y (n, 2); a, b level indices (n,))."""
    mean = y.mean(axis=0)
    ra = np.stack([np.bincount(a, y[:, k], na) for k in (0, 1)], axis=1) / (len(y) / na) - mean
    cb = np.stack([np.bincount(b, y[:, k], nb) for k in (0, 1)], axis=1) / (len(y) / nb) - mean
    interaction = y - mean - ra[a] - cb[b]
    return float((interaction ** 2).sum()) + (len(y) / na) * _line_loss(ra) + (len(y) / nb) * _line_loss(cb)


def _ellipse_centre(y: np.ndarray, a: np.ndarray, na: int, circle: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """(centre (2,), M (2, 2) positive definite) with (y − c)ᵀM(y − c) constant per radius level, by
    algebraic least squares (trace M = 1); M = I/2 for the circle fit. None when no such ellipse exists."""
    onehot = np.eye(na)[a]
    x0, x1 = y[:, 0], y[:, 1]
    if circle:  # |y|² = 2 y·c + e_level
        design = np.column_stack([2 * x0, 2 * x1, onehot])
        sol = np.linalg.lstsq(design, x0 ** 2 + x1 ** 2, rcond=None)[0]
        return sol[:2], np.eye(2) / 2
    # x0²(1 − m22) + 2 x0 x1 m12 + x1² m22 − 2 (x0 w0 + x1 w1) + e_level = 0, with w = M c
    design = np.column_stack([x1 ** 2 - x0 ** 2, 2 * x0 * x1, -2 * x0, -2 * x1, onehot])
    sol = np.linalg.lstsq(design, -(x0 ** 2), rcond=None)[0]
    m22, m12, w = sol[0], sol[1], sol[2:4]
    m = np.array([[1 - m22, m12], [m12, m22]])
    if not np.all(np.isfinite(m)) or np.linalg.eigvalsh(m).min() <= 1e-9:
        return None
    return np.linalg.solve(m, w), m


def polar_fit(y: np.ndarray, a: np.ndarray, b: np.ndarray, na: int, nb: int) -> tuple[float, float]:
    """(residual SS, radial share) of the polar model with radius factor levels a, angle factor levels b."""
    best = (np.inf, 0.0)
    for circle in (True, False):
        fit = _ellipse_centre(y, a, na, circle)
        if fit is None:
            continue
        c, m = fit
        w, v = np.linalg.eigh(m)
        half, half_inv = (v * np.sqrt(w)) @ v.T, (v / np.sqrt(w)) @ v.T
        u = (y - c) @ half  # circle coordinates (half is symmetric)
        if not np.all(np.isfinite(u)):
            continue
        radius = np.bincount(a, np.hypot(u[:, 0], u[:, 1]), na) / np.bincount(a, minlength=na)
        for _ in range(2):  # alternating least squares: angles given radii, radii given angles
            s = np.stack([np.bincount(b, radius[a] * u[:, k], nb) for k in (0, 1)], axis=1)
            angle = np.arctan2(s[:, 1], s[:, 0])
            direction = np.stack([np.cos(angle), np.sin(angle)], axis=1)
            radius = np.maximum(np.bincount(a, (u * direction[b]).sum(axis=1), na)
                                / np.bincount(a, minlength=na), 0.0)
        u_hat = radius[a, None] * direction[b]
        sse = float((((u_hat @ half_inv + c) - y) ** 2).sum())
        if not np.isfinite(sse) or sse >= best[0]:
            continue
        radial = float(((radius[a] - radius[a].mean()) ** 2).sum())
        angular = float((radius[a].mean() ** 2) * ((direction[b] - direction[b].mean(axis=0)) ** 2).sum())
        best = (sse, radial / (radial + angular) if radial + angular > 0 else 0.0)
    return best


def axis_purity(codes: np.ndarray, a: np.ndarray, b: np.ndarray, na: int, nb: int) -> float:
    """Share of the pair's per-latent sensitivity that sits with the latent's dominant factor, in [0.5, 1].

    codes (n, d) on a full balanced grid with level indices a, b (n,). S_a[k]: variance of code k over the
    levels of a at fixed b, averaged over b; S_b[k] likewise. Returns Σ_k max(S_a, S_b) / Σ_k (S_a + S_b),
    1 when nothing varies.
    """
    cube = np.zeros((na, nb, codes.shape[1]))
    cube[a, b] = codes
    sa, sb = cube.var(axis=0).mean(axis=0), cube.var(axis=1).mean(axis=0)
    total = float((sa + sb).sum())
    scale = float(np.mean(codes ** 2)) + 1.0
    return float(np.maximum(sa, sb).sum() / total) if total > 1e-20 * scale else 1.0


def classify_grid(grid_factors: np.ndarray, codes: np.ndarray) -> dict[str, Any]:
    """Evidence for one grid: the two factors' values (n, 2), any units, only equality matters (each
    distinct value is a level), forming a full grid of n_a × n_b points each once (n_a, n_b >= 3), and
    their codes (n, d) (posterior means, latent units).

    Returns {"cartesian_residual", "polar_residual" (fractions of the plane's variance, [0, 1]),
    "radial_share" ([0, 1]), "radius_factor" (0 or 1: which column is the radius in the better polar fit),
    "axis_purity" ([0.5, 1]), "plane_fraction" (share of the codes' variance in the PCA plane), "degenerate"
    (bool: no variance), "label" (one of LABELS)}.
    """
    f = np.asarray(grid_factors)
    x = np.asarray(codes, np.float64)
    if f.ndim != 2 or f.shape[1] != 2 or x.ndim != 2 or x.shape[0] != f.shape[0]:
        raise ValueError(f"classify_grid: expected grid_factors (n, 2) and codes (n, d), got {f.shape}, {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("classify_grid: codes hold NaN or inf (a diverged model?)")
    (a, na), (b, nb) = _levels(f[:, 0]), _levels(f[:, 1])
    if min(na, nb) < MIN_LEVELS:
        raise ValueError(f"classify_grid: each factor needs >= {MIN_LEVELS} values, got {na} × {nb}")
    if len(f) != na * nb or np.unique(a * nb + b).size != len(f):
        raise ValueError(f"classify_grid: not a full grid: {len(f)} points for {na} × {nb} values")
    y, plane_fraction = _plane(x)
    purity = axis_purity(x, a, b, na, nb)
    total = float((y ** 2).sum())
    if total == 0:
        ev = {"cartesian_residual": 0.0, "polar_residual": 1.0, "radial_share": 0.0, "radius_factor": 0,
              "axis_purity": purity, "plane_fraction": plane_fraction, "degenerate": True}
        return {**ev, "label": label_from_evidence(ev)}
    cart = min(1.0, cartesian_fit(y, a, b, na, nb) / total)
    fits = [polar_fit(y, a, b, na, nb), polar_fit(y, b, a, nb, na)]
    radius_factor = int(fits[1][0] < fits[0][0])
    sse, share = fits[radius_factor]
    ev = {"cartesian_residual": cart, "polar_residual": float(min(1.0, sse / total)), "radial_share": share,
          "radius_factor": radius_factor, "axis_purity": purity, "plane_fraction": plane_fraction,
          "degenerate": False}
    return {**ev, "label": label_from_evidence(ev)}


def label_from_evidence(ev: Mapping[str, float]) -> str:
    """POLAR, ALIGNED or MIXED from cartesian_residual, polar_residual, radial_share and axis_purity (the
    module's rule)."""
    polar = (ev["polar_residual"] <= POLAR_MAX_RESIDUAL
             and ev["cartesian_residual"] - ev["polar_residual"] >= MARGIN
             and MIN_SHARE <= ev["radial_share"] <= 1 - MIN_SHARE)
    if polar:
        return POLAR
    return ALIGNED if ev["axis_purity"] >= ALIGNED_MIN_PURITY else MIXED


def classify_pair(grids: Sequence[tuple[np.ndarray, np.ndarray]] | tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Evidence and label of one factor pair from one grid (grid_factors (n, 2), codes (n, d)) or several
    (one per base point): `classify_grid`'s residuals and radial share averaged over the grids, then the
    rule. Returns {"cartesian_residual", "polar_residual", "radial_share", "axis_purity", "label",
    "grids": [per grid]}."""
    if isinstance(grids, tuple) and len(grids) == 2 and isinstance(grids[0], np.ndarray):
        grids = [grids]
    per = [classify_grid(g, c) for g, c in grids]
    if not per:
        raise ValueError("classify_pair: no grid given")
    ev = {k: float(np.mean([p[k] for p in per]))
          for k in ("cartesian_residual", "polar_residual", "radial_share", "axis_purity")}
    return {**ev, "label": label_from_evidence(ev), "grids": per}


SCORE_COLUMNS = ("polar_pairs", "aligned_pairs", "mixed_pairs", "polar_fraction", "aligned_fraction",
                 "mixed_fraction", "embedding_residual_cartesian", "embedding_residual_polar",
                 "embedding_axis_purity", "embedding_per_pair")


def embedding_scores(codes_per_pair: Mapping[tuple[int, int], Any]) -> dict[str, Any]:
    """Restart-level columns from {(i, j): grids of that pair (as `classify_pair` takes)}, pairs in the
    mapping's order. Returns SCORE_COLUMNS: the pairs with each label (polar_pairs, aligned_pairs,
    mixed_pairs, int) and their fractions of the pairs evaluated, the mean residuals and axis purity over
    pairs, embedding_per_pair (polar − cartesian residual per pair); and "pairs" ({(i, j): classify_pair's
    dict}, not a store column). No pair: every column None."""
    pairs = {p: classify_pair(g) for p, g in codes_per_pair.items()}
    if not pairs:
        return {**dict.fromkeys(SCORE_COLUMNS), "pairs": {}}
    counts = {label: sum(p["label"] == label for p in pairs.values()) for label in LABELS}
    cart = [p["cartesian_residual"] for p in pairs.values()]
    pol = [p["polar_residual"] for p in pairs.values()]
    out: dict[str, Any] = {}
    for label, name in ((POLAR, "polar"), (ALIGNED, "aligned"), (MIXED, "mixed")):
        out[f"{name}_pairs"] = int(counts[label])
        out[f"{name}_fraction"] = counts[label] / len(pairs)
    return {**out, "embedding_residual_cartesian": float(np.mean(cart)),
            "embedding_residual_polar": float(np.mean(pol)),
            "embedding_axis_purity": float(np.mean([p["axis_purity"] for p in pairs.values()])),
            "embedding_per_pair": [float(p - c) for p, c in zip(pol, cart, strict=True)], "pairs": pairs}


# ------------------------------------------------------------------------------------------------ grids

def factor_levels(factor_sizes: Sequence[int | None], ranges: Mapping[int, tuple[float, float]] | None = None,
                  max_levels: int = MAX_LEVELS) -> dict[int, np.ndarray]:
    """Grid values per usable factor: a discrete factor with >= MIN_LEVELS classes gets its class indices
    (at most `max_levels`, evenly spaced); a continuous one (size None) `max_levels` evenly spaced values
    over ranges[k] (low, high), and is skipped without a range or with an empty one."""
    out: dict[int, np.ndarray] = {}
    for k, size in enumerate(factor_sizes):
        if size is None:
            lo, hi = (ranges or {}).get(k, (np.nan, np.nan))
            if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
                out[k] = np.linspace(lo, hi, max_levels)
        elif size >= MIN_LEVELS:
            out[k] = np.unique(np.round(np.linspace(0, size - 1, min(size, max_levels))).astype(np.int64))
    return out


def factor_pairs(levels: Mapping[int, np.ndarray], max_pairs: int = MAX_PAIRS) -> list[tuple[int, int]]:
    """The evaluated pairs (i < j): the first `max_pairs` in lexicographic order of the usable factors."""
    return list(combinations(sorted(levels), 2))[:max_pairs]


def pair_grid(base: np.ndarray, i: int, j: int, values_i: np.ndarray, values_j: np.ndarray) -> np.ndarray:
    """Factors (n_i·n_j, K): `base` (K,) with factors i and j replaced by every combination of the values."""
    vi, vj = np.meshgrid(values_i, values_j, indexing="ij")
    grid = np.repeat(np.asarray(base)[None, :], vi.size, axis=0)
    grid = grid.astype(np.result_type(grid.dtype, vi.dtype, vj.dtype))
    grid[:, i], grid[:, j] = vi.ravel(), vj.ravel()
    return grid


def embedding_score(encode: Callable[[np.ndarray], np.ndarray], dataset, *, seed: int,
                    ranges: Mapping[int, tuple[float, float]] | None = None, max_levels: int = MAX_LEVELS,
                    max_pairs: int = MAX_PAIRS, base_points: int = BASE_POINTS) -> dict[str, Any]:
    """`embedding_scores` of `encode` (observations -> codes (n, d)) on a ground-truth dataset
    (`factor_sizes`, `sample_factors`, `observations`).

    Cost: at most max_pairs × base_points × max_levels² observations rendered and encoded (15 × 3 × 256 =
    11,520 by default); base points are `sample_factors(base_points, rng)` with rng from `seed` (one base
    point when the dataset has only the two factors of the pair). `ranges`: (low, high) per continuous
    factor (see `factor_levels`).
    """

    rng = np.random.default_rng(seed)
    levels = factor_levels(list(dataset.factor_sizes), ranges, max_levels)
    pairs = factor_pairs(levels, max_pairs)
    n_base = 1 if dataset.num_factors <= 2 else base_points
    bases = np.asarray(dataset.sample_factors(n_base, rng))
    grids = {(i, j): [pair_grid(base, i, j, levels[i], levels[j]) for base in bases] for i, j in pairs}
    flat = [g for gs in grids.values() for g in gs]
    if not flat:
        return embedding_scores({})
    everything = np.concatenate(flat)
    codes = np.concatenate([encode_factors(encode, dataset, everything[s : s + CHUNK_OBSERVATIONS])
                            for s in range(0, len(everything), CHUNK_OBSERVATIONS)])
    out: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray]]] = {}
    start = 0
    for (i, j), gs in grids.items():
        for g in gs:
            out.setdefault((i, j), []).append((g[:, [i, j]], codes[start : start + len(g)]))
            start += len(g)
    return embedding_scores(out)
