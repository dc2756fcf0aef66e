"""Input checks shared by the metric functions: shapes and finiteness, with errors that name the input."""

from __future__ import annotations

import numpy as np


def check_matrix(x: np.ndarray, name: str) -> np.ndarray:
    """x as a finite (N, k) float64 array with N ≥ 1, or a ValueError naming it."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (N, k) array, got shape {x.shape}")
    check_finite(x, name)
    return x


def check_pair(codes: np.ndarray, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated (codes (N, d), factors (N, K)) with the same N."""
    codes, factors = check_matrix(codes, "codes"), check_matrix(factors, "factors")
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(f"codes have {codes.shape[0]} rows but factors {factors.shape[0]}")
    return codes, factors


def check_finite(x: np.ndarray, name: str) -> None:
    """ValueError naming `name` if x holds NaN or inf."""
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf (a diverged model?); metrics are undefined")
