"""What the metrics of one checkpoint are computed from, each piece computed once, when first needed.

Which points each input holds (all seeded from the restart's metric seed, one independent stream per
purpose, so adding or removing a metric never changes another's value and a rerun gives the same numbers):
- codes / posterior / active / jacobian / factors: `n_eval` held-out points drawn without replacement from
  `dataset.split_indices("test")` (all of them if there are fewer), encoded to posterior means (N, d).
- supervised: `n_train_supervised` + `n_test_supervised` fresh draws from the generative model
  (`sample_factors` + `observations`), as disentanglement_lib does (DCI, SAP).
- encode / dataset: the intervention protocols (FactorVAE, BetaVAE) sample their own batches through them.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from workers.metrics.discrete import factor_classes
from workers.metrics.polarized import active_mask_mu
from workers.metrics.sampling import encode_sample

ENCODE_BATCH = 1024  # observations per encoder call on a CPU
ENCODE_BATCH_CUDA = 8192  # on a GPU: the sampling chunks (CHUNK_OBSERVATIONS) go through in one call


def metric_seed(run_key: str) -> int:
    """The integer seed of one restart's metrics: stable, derived from its run key (inline evaluation in the
    trial and the evaluation stage use the same one, so both compute the same values)."""
    return int(run_key[:8], 16)


def metric_stream(seed: int, name: str) -> int:
    """A 31-bit seed for purpose `name`, derived from the restart's metric seed (stable across processes)."""
    return int(np.random.default_rng([int(seed) & 0xFFFFFFFFFFFF, zlib.crc32(name.encode())]).integers(2**31))


def encode_points(model: Any, x: np.ndarray, device: str | torch.device,
                  batch: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Posterior means (N, d) float64 and posterior parameters (numpy) of observations x, in batches
    (default ENCODE_BATCH, ENCODE_BATCH_CUDA on a GPU)."""
    if batch is None:
        batch = ENCODE_BATCH_CUDA if torch.device(device).type == "cuda" else ENCODE_BATCH
    mus: list[np.ndarray] = []
    params: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for s in range(0, len(x), batch):
            mu, post = model.encode(torch.as_tensor(np.asarray(x[s : s + batch]), device=device))
            mus.append(mu.double().cpu().numpy())
            for k, v in post.items():
                params.setdefault(k, []).append(v.double().cpu().numpy())
    return np.concatenate(mus), {k: np.concatenate(v) for k, v in params.items()}


class CheckpointInputs:
    """The inputs of one seed's model (a `workers.models.protocol.SeedModel`) on `dataset` at a checkpoint.

    eval_cfg: {"n_eval", "n_train_supervised", "n_test_supervised"} (sweep.defaults.EVAL_DEFAULTS) and
    optionally "n_jobs" (parallel fits; default torch.get_num_threads(), which Ray sets to the task's CPUs).
    """

    def __init__(self, model: Any, dataset: Any, eval_cfg: dict[str, Any], seed: int,
                 device: str | torch.device = "cpu"):
        self.model, self.dataset, self.seed, self.device = model, dataset, seed, device
        self.n_eval = int(eval_cfg.get("n_eval", 10_000))
        self.n_train_supervised = int(eval_cfg.get("n_train_supervised", 10_000))
        self.n_test_supervised = int(eval_cfg.get("n_test_supervised", 5_000))
        self.n_jobs = int(eval_cfg.get("n_jobs") or torch.get_num_threads())

    def stream(self, name: str) -> int:
        return metric_stream(self.seed, name)

    @functools.cached_property
    def _indices(self) -> np.ndarray:
        test = self.dataset.split_indices("test")
        rng = np.random.default_rng(self.stream("points"))
        return np.sort(rng.choice(test, size=min(self.n_eval, len(test)), replace=False))

    @functools.cached_property
    def _encoded(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        mu, params = encode_points(self.model, self.dataset.observations_at(self._indices), self.device)
        if not np.all(np.isfinite(mu)):
            raise ValueError("encoder returned NaN or inf means (a diverged model?); metrics are undefined")
        return mu, params

    @property
    def codes(self) -> np.ndarray:
        """Posterior means of the held-out points, (N, d) float64."""
        return self._encoded[0]

    @functools.cached_property
    def posterior(self) -> dict[str, np.ndarray]:
        """{"logvar": (N, d)} for a diagonal posterior, {"cov": (N, d, d)} for a full one, {} for none."""
        params = self._encoded[1]
        if "logvar" in params:
            return {"logvar": params["logvar"]}
        if "scale_tril" in params:
            L = params["scale_tril"]
            return {"cov": L @ np.swapaxes(L, 1, 2)}
        if getattr(self.model, "posterior", "none") != "none":
            raise ValueError(f"model.posterior is {self.model.posterior!r} but encode returned {sorted(params)}; "
                             "expected 'logvar' (diag) or 'scale_tril' (full)")
        return {}

    @functools.cached_property
    def active(self) -> np.ndarray:
        """(d,) bool: latents whose posterior mean varies (design.md §6, the polarised regime's rule)."""

        return active_mask_mu(self.codes)

    @functools.cached_property
    def gram(self) -> np.ndarray:
        """Gram matrices JᵀJ (N, d, d) float64 of the decoder Jacobians at the held-out codes (computed once for
        every Jacobian metric); NaN or inf raise ValueError."""
        from workers.metrics.dto import check_gram, decoder_gram

        mu = torch.as_tensor(self.codes, dtype=torch.float32, device=self.device)
        G = decoder_gram(self.model.decode, mu)
        check_gram(G)
        return G

    @functools.cached_property
    def jacobian(self) -> dict[str, Any]:
        """DtO (all and active latents) and c_ima from the decoder Jacobians at the held-out codes."""
        from workers.metrics.dto import gram_metrics

        return gram_metrics(self.gram, active=self.active)

    @functools.cached_property
    def factors(self) -> np.ndarray:
        """Ground-truth factors of the held-out points, (N, K)."""
        return self.dataset.factors_at(self._indices)

    @property
    def discrete(self) -> np.ndarray:
        return np.asarray(self.dataset.discrete, dtype=bool)

    @property
    def encode(self) -> Callable[[np.ndarray], np.ndarray]:
        """observations -> posterior means (N, d) float64."""
        return lambda x: encode_points(self.model, x, self.device)[0]

    @functools.cached_property
    def supervised(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(codes_train, factors_train, codes_test, factors_test) drawn from the generative model."""

        rng = np.random.default_rng(self.stream("supervised"))
        c_tr, f_tr = encode_sample(self.encode, self.dataset, self.n_train_supervised, rng)
        c_te, f_te = encode_sample(self.encode, self.dataset, self.n_test_supervised, rng)
        return c_tr, f_tr, c_te, f_te

    @functools.cached_property
    def supervised_classes(self) -> tuple[np.ndarray, np.ndarray]:
        """The supervised factors as class indices (train (N, K), test (M, K)), binned jointly: discrete
        factors by value, continuous ones by the 20-bin rule (`discrete.factor_classes`)."""

        _, f_tr, _, f_te = self.supervised
        classes = factor_classes(np.concatenate([f_tr, f_te]), self.discrete)
        return classes[: len(f_tr)], classes[len(f_tr):]
