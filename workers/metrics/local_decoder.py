"""The local-decoder experiment of Bhowal, Soni & Rambhatla (ICML 2024, §4.4 eqs. 11–12, Tables 1–2, A.8.2).

Around a held-out point's posterior mean μ (d,), with ε ~ N(0, Σ) drawn from its posterior (Σ = diag σ² for
a diagonal posterior), the stochastic displacement of the decoder output is

    y(ε) = Dec(μ + ε) − Dec(μ)        (D,) in data space.

Per point two local decoders are fitted to y on `n_fit` draws of ε, as the paper does (one small network per
point, eq. 11 as the loss):

    linear           y ≈ W ε + b                   (eq. 12's f_linear: a layer without nonlinearity)
    one nonlinearity y ≈ tanh(W ε + b)             (eq. 11's f_D(M_D ε): the same layer followed by tanh)

The linear fit is least squares (exact). The tanh fit is a separate least-squares problem per output
coordinate (d + 1 parameters each), solved by Levenberg–Marquardt from the linear solution, batched over
points and coordinates; it is not guaranteed to beat the linear one (tanh bounds each output to (−1, 1)).
Both are scored on `n_test` fresh draws, as the unexplained share of the displacement:

    local_decoder_linear    = Σ ‖y − ŷ_linear‖² / Σ ‖y‖²     (sums over points and test draws)
    local_decoder_nonlinear = Σ ‖y − ŷ_tanh‖² / Σ ‖y‖²

A.8.2 compares estimates of the stochastic reconstruction loss L_stoch = Σ_i E_ε ‖y_i(ε)‖² (the sum over
points of its Monte Carlo estimate L̂ on the test draws): Rolínek et al.'s linearisation ‖J_i ε‖² (J_i the
decoder Jacobian at μ_i) and the fitted nonlinear local decoder ‖tanh(W ε + b)‖², on the same draws. The
paper reports the squared difference of the sums; stored here as the relative error of each estimate,

    local_decoder_stoch_jacobian  = |L̃_J − L̂| / L̂,      local_decoder_stoch_nonlinear = |L̃_dec − L̂| / L̂.

All four are None for a model without a posterior (an autoencoder has no ε). Cost: n_points ·
(n_fit + n_test + 1) decoder evaluations, one Jacobian per point, and `iterations` Levenberg–Marquardt
steps over n_points · D problems of size d + 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

COLUMNS = ("local_decoder_linear", "local_decoder_nonlinear", "local_decoder_stoch_jacobian",
           "local_decoder_stoch_nonlinear")
N_POINTS = 16  # held-out points per restart
N_FIT = 64  # draws of ε per point the local decoders are fitted on
N_TEST = 64  # fresh draws per point they are scored on
ITERATIONS = 8  # LM steps (noisy tanh layer, dSprites size: 6 reach the 15-step error to 6 digits)
CHUNK_ELEMENTS = 1 << 23  # points per chunk so that points × draws × D stays below this many floats


# ------------------------------------------------------------------------------------------------ fits

def _design(eps: np.ndarray) -> np.ndarray:
    """(n, S, d) draws -> (n, S, d + 1) float64 rows [ε, 1]."""
    return np.concatenate([eps, np.ones(eps.shape[:2] + (1,))], axis=2)


def fit_linear(eps: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares W, b of y ≈ W ε + b per point: eps (n, S, d), y (n, S, D) -> θ (n, d + 1, D), the last
    row b. Needs S ≥ d + 1 draws (a tiny ridge keeps a rank-deficient design solvable)."""
    X = _design(eps)
    A = np.swapaxes(X, 1, 2) @ X
    A += 1e-10 * np.trace(A, axis1=1, axis2=2)[:, None, None] * np.eye(A.shape[1])
    return np.linalg.solve(A, np.swapaxes(X, 1, 2) @ y.astype(np.float64))


def predict_linear(eps: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """(n, S, d), (n, d + 1, D) -> (n, S, D): W ε + b."""
    return _design(eps) @ theta


def fit_tanh(eps: np.ndarray, y: np.ndarray, *, iterations: int = ITERATIONS,
             theta0: np.ndarray | None = None) -> np.ndarray:
    """Least-squares θ of y ≈ tanh(W ε + b) per point and output coordinate, by Levenberg–Marquardt.

    eps (n, S, d), y (n, S, D) -> θ (n, d + 1, D) (last row b). Each (point, coordinate) is its own
    problem in d + 1 parameters with its own damping; a step is kept only where it lowers that problem's
    squared error, so the error never rises above the start's. Starts at `theta0` (default: the linear fit).
    """
    X = _design(eps)  # (n, S, q)
    n, S, q = X.shape
    y = y.astype(np.float64)
    theta = fit_linear(eps, y) if theta0 is None else np.array(theta0, dtype=np.float64)
    XX = (X[:, :, :, None] * X[:, :, None, :]).reshape(n, S, q * q)  # per-draw outer products
    eye = np.eye(q)

    def residual(th: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = np.tanh(X @ th)
        r = y - t
        return t, r, (r * r).sum(axis=1)  # loss (n, D)

    t, r, loss = residual(theta)
    lam = np.full(loss.shape, 1e-2)
    for _ in range(iterations):
        g = 1.0 - t * t  # dtanh/du, (n, S, D)
        A = (np.swapaxes(g * g, 1, 2) @ XX).reshape(n, -1, q, q)  # (n, D, q, q) Gauss–Newton matrices
        b = np.swapaxes(g * r, 1, 2) @ X  # (n, D, q)
        diag = np.diagonal(A, axis1=2, axis2=3)
        damped = A + (lam[..., None] * diag + 1e-12)[..., None] * eye
        step = np.linalg.solve(damped, b[..., None])[..., 0]  # (n, D, q)
        cand = theta + np.swapaxes(step, 1, 2)
        t_c, r_c, loss_c = residual(cand)
        better = loss_c < loss
        theta = np.where(better[:, None, :], cand, theta)
        t = np.where(better[:, None, :], t_c, t)
        r = np.where(better[:, None, :], r_c, r)
        loss = np.where(better, loss_c, loss)
        lam = np.where(better, lam / 3.0, lam * 4.0)
    return theta


def predict_tanh(eps: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """(n, S, d), (n, d + 1, D) -> (n, S, D): tanh(W ε + b)."""
    return np.tanh(_design(eps) @ theta)


# ------------------------------------------------------------------------------------------------ scores

def local_decoder_sums(eps_fit: np.ndarray, y_fit: np.ndarray, eps_test: np.ndarray, y_test: np.ndarray,
                       gram: np.ndarray, *, iterations: int = ITERATIONS) -> dict[str, float]:
    """The sums the scores are ratios of, for one chunk of points (fits on the fit draws, sums on the test draws).

    eps_fit (n, S, d), y_fit (n, S, D), eps_test (n, T, d), y_test (n, T, D), gram (n, d, d) = JᵀJ at μ.
    Returns {"y2": Σ‖y‖², "linear": Σ‖y − ŷ_lin‖², "nonlinear": Σ‖y − ŷ_tanh‖², "stoch": Σ_i mean_t ‖y‖²,
    "stoch_jacobian": Σ_i mean_t εᵀ JᵀJ ε, "stoch_nonlinear": Σ_i mean_t ‖ŷ_tanh‖²}.
    """
    y_test = y_test.astype(np.float64)
    lin = fit_linear(eps_fit, y_fit)
    tnh = fit_tanh(eps_fit, y_fit, iterations=iterations, theta0=lin)
    pred_t = predict_tanh(eps_test, tnh)
    jac = np.einsum("nti,nij,ntj->nt", eps_test, gram, eps_test)
    return {"y2": float((y_test ** 2).sum()),
            "linear": float(((y_test - predict_linear(eps_test, lin)) ** 2).sum()),
            "nonlinear": float(((y_test - pred_t) ** 2).sum()),
            "stoch": float((y_test ** 2).sum(axis=2).mean(axis=1).sum()),
            "stoch_jacobian": float(jac.mean(axis=1).sum()),
            "stoch_nonlinear": float((pred_t ** 2).sum(axis=2).mean(axis=1).sum())}


def scores_from_sums(s: dict[str, float]) -> dict[str, float | None]:
    """The four stored columns from summed `local_decoder_sums` (None where the displacement is all zero)."""
    if s["y2"] <= 0 or s["stoch"] <= 0:
        return dict.fromkeys(COLUMNS)
    return {"local_decoder_linear": s["linear"] / s["y2"], "local_decoder_nonlinear": s["nonlinear"] / s["y2"],
            "local_decoder_stoch_jacobian": abs(s["stoch_jacobian"] - s["stoch"]) / s["stoch"],
            "local_decoder_stoch_nonlinear": abs(s["stoch_nonlinear"] - s["stoch"]) / s["stoch"]}


def posterior_scale(posterior: dict[str, np.ndarray]) -> np.ndarray | None:
    """Cholesky factors (N, d, d) of the posterior covariances from {"logvar"} or {"cov"}; None without one."""
    if "logvar" in posterior:
        sd = np.exp(0.5 * np.asarray(posterior["logvar"], dtype=np.float64))
        return sd[:, :, None] * np.eye(sd.shape[1])
    if "cov" in posterior:
        return np.linalg.cholesky(np.asarray(posterior["cov"], dtype=np.float64))
    return None


# ------------------------------------------------------------------------------------------------ from a decoder

def local_decoder(
    decoder: Callable[[torch.Tensor], torch.Tensor],
    codes: np.ndarray,
    posterior: dict[str, np.ndarray],
    *,
    seed: int,
    device: str | torch.device = "cpu",
    n_points: int = N_POINTS,
    n_fit: int = N_FIT,
    n_test: int = N_TEST,
    iterations: int = ITERATIONS,
) -> dict[str, Any]:
    """The four `local_decoder_*` columns of a torch decoder at `n_points` of the held-out means.

    codes: (N, d) posterior means; posterior: {"logvar": (N, d)} or {"cov": (N, d, d)} (empty: all None).
    The points (without replacement) and the draws ε = L z, z ~ N(0, I), L the posterior's Cholesky factor,
    come from `seed`. Decoder output is flattened to D values per point.
    """
    import torch

    from workers.metrics.dto import check_gram, decoder_gram

    scale = posterior_scale(posterior)
    if scale is None:
        return dict.fromkeys(COLUMNS)
    codes = np.asarray(codes, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(codes), size=min(n_points, len(codes)), replace=False))
    mu, L = codes[idx], scale[idx]
    n, d = mu.shape
    eps = np.einsum("nij,nsj->nsi", L, rng.standard_normal((n, n_fit + n_test, d)))
    mu_t = torch.as_tensor(mu, dtype=torch.float32, device=device)
    with torch.no_grad():
        out_size = int(np.prod(decoder(mu_t[:1]).shape[1:]))
    gram = decoder_gram(decoder, mu_t)
    check_gram(gram)
    chunk = max(1, CHUNK_ELEMENTS // ((n_fit + n_test) * out_size))
    total: dict[str, float] = {}
    for s in range(0, n, chunk):
        z = mu_t[s : s + chunk]
        e = torch.as_tensor(eps[s : s + chunk], dtype=torch.float32, device=device)
        with torch.no_grad():
            base = decoder(z).reshape(len(z), 1, -1)
            moved = decoder((z[:, None, :] + e).reshape(-1, d)).reshape(len(z), e.shape[1], -1)
            y = (moved - base).double().cpu().numpy()
        if not np.all(np.isfinite(y)):
            raise ValueError("decoder returned NaN or inf (a diverged model?); local_decoder is undefined")
        part = local_decoder_sums(eps[s : s + chunk, :n_fit], y[:, :n_fit], eps[s : s + chunk, n_fit:],
                                  y[:, n_fit:], gram[s : s + chunk], iterations=iterations)
        for k, v in part.items():
            total[k] = total.get(k, 0.0) + v
    return scores_from_sums(total)
