"""Reconstruction of a dataset from subsets of its principal axes (Bhowal et al. 2024, A.8.6, Table 7).

The paper reconstructs dSprites images from the first k principal axes and from ranges that drop the
leading ones, to show that the high-variance axes carry the factors that matter for reconstruction. With X
(N, D) the flattened observations, x̄ their mean and the principal axes the eigenvectors of the sample
covariance sorted by decreasing variance, the reconstruction from the axes P_S (D, |S|) is

    x̂ = x̄ + P_S P_Sᵀ (x − x̄),    error = mean over points and coordinates of (x − x̂)²

(the mean squared error per coordinate, e.g. per pixel, in the data's units). Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The paper's Table 7 columns: (start, stop) of 0-based, half-open ranges of axes sorted by variance
PAPER_SUBSETS: tuple[tuple[int, int], ...] = ((0, 1500), (0, 2000), (0, 2500), (0, 3000), (2000, 3000), (2500, 3000))


def principal_axes(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean (D,), variances (D,) decreasing, axes (D, D) as columns) of observations X (N, D), in float64.

    From the eigendecomposition of the D × D sample covariance (divisor N): exact, and cheaper than an SVD
    of X when N > D.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"observations must be (N, D), got shape {X.shape}")
    mean = X.mean(axis=0)
    Xc = X - mean
    var, axes = np.linalg.eigh(Xc.T @ Xc / len(X))
    order = np.argsort(var)[::-1]
    return mean, np.clip(var[order], 0.0, None), axes[:, order]


def reconstruction_errors(X: np.ndarray, subsets: Sequence[tuple[int, int]] = PAPER_SUBSETS) -> list[dict[str, float]]:
    """Per subset (start, stop) of the axes sorted by variance: {"start", "stop", "axes", "mse",
    "variance_kept"}: the mean squared error per coordinate of the reconstruction from those axes, and the
    share of the total variance they hold. Ranges beyond D are cut at D.
    """
    X = np.asarray(X, dtype=np.float64)
    mean, var, axes = principal_axes(X)
    Xc = X - mean
    D = X.shape[1]
    total = float(var.sum())
    out = []
    for start, stop in subsets:
        if not 0 <= start < stop:
            raise ValueError(f"axis range ({start}, {stop}): need 0 <= start < stop")
        a, b = min(start, D), min(stop, D)
        P = axes[:, a:b]
        resid = Xc - (Xc @ P) @ P.T
        out.append({"start": start, "stop": stop, "axes": b - a, "mse": float((resid ** 2).mean()),
                    "variance_kept": float(var[a:b].sum() / total) if total > 0 else float("nan")})
    return out


def parse_subsets(text: str) -> list[tuple[int, int]]:
    """'1500,2000-3000' -> [(0, 1500), (2000, 3000)]: k = the first k axes, a-b = axes a+1 … b (1-based)."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        a, sep, b = part.partition("-")
        try:
            rng = (int(a), int(b)) if sep else (0, int(a))
        except ValueError:
            raise ValueError(f"axis subset {part!r}: expected K (the first K axes) or A-B (axes A+1 to B)") from None
        if not 0 <= rng[0] < rng[1]:
            raise ValueError(f"axis subset {part!r}: need 0 <= A < B")
        out.append(rng)
    return out


def subset_label(start: int, stop: int) -> str:
    return f"first {stop}" if start == 0 else f"{start + 1} to {stop}"
