"""The checkpoint evaluation hook the trainer calls: one seed's model -> one row's metric columns.

    row.update(evaluate_checkpoint(model, dataset, metrics=cfg["eval"]["metrics"], eval_cfg=cfg["eval"],
                                   seed=seed_from_run_key, device=device))

Which points each metric sees (all seeded from `seed`, one independent stream per metric, so adding or
removing a metric never changes another's value and a rerun gives the same numbers):
- dto / c_ima / polarized / ds / mig / mig_sup: `n_eval` held-out points drawn without replacement from
  `dataset.split_indices("test")` (all of them if there are fewer), encoded to posterior means.
- dci / sap: `n_train_supervised` + `n_test_supervised` fresh draws from the generative model
  (`sample_factors` + `observations`), as disentanglement_lib does.
- factorvae / betavae: the library's procedure with num_train = `n_train_supervised`, num_eval =
  `n_test_supervised` (its defaults 10,000 / 5,000 coincide with those) and 10,000 = `n_train_supervised`
  points for the FactorVAE variance estimate.

The result holds exactly the `workers.sink.METRIC_COLUMNS` of the requested metrics: None where a value is
not defined (factor metrics on datasets without factors, posterior values of an autoencoder, ...), never
a NaN. `polarized_fraction` needs the training trace and is left to the trainer
(`workers.metrics.polarized_fraction`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from workers.metrics.betavae import betavae_score
from workers.metrics.catalog import METRICS
from workers.metrics.dci import dci
from workers.metrics.ds import ds
from workers.metrics.dto import jacobian_metrics
from workers.metrics.factorvae import factorvae_score
from workers.metrics.mig import mig, mig_sup
from workers.metrics.polarized import active_mask_mu, polarized
from workers.metrics.sampling import encode_sample
from workers.metrics.sap import sap

# metric name -> the METRIC_COLUMNS it fills
METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "dto": ("dto", "dto_active"),
    "c_ima": ("c_ima",),
    "polarized": ("kl_per_dim", "sigma2_per_dim", "active_units", "active_units_mu", "polarized_delta_kl"),
    "ds": ("ds", "ds_per_factor"),
    "mig": ("mig", "mig_per_factor"),
    "mig_sup": ("mig_sup",),
    "dci": ("dci_disentanglement", "dci_completeness", "dci_informativeness_train",
            "dci_informativeness_test"),
    "sap": ("sap",),
    "factorvae": ("factorvae_train", "factorvae_eval", "factorvae_active_dims"),
    "betavae": ("betavae_train", "betavae_eval"),
}

ENCODE_BATCH = 1024


def _stream(seed: int, name: str) -> int:
    """A 31-bit seed for metric `name`, derived from the run's seed (stable across processes)."""
    return int(np.random.default_rng([int(seed) & 0xFFFFFFFFFFFF, zlib.crc32(name.encode())]).integers(2**31))


def encode_points(model, x: np.ndarray, device: str | torch.device, batch: int = ENCODE_BATCH):
    """Posterior means (N, d) float64 and posterior parameters (numpy) of observations x, in batches."""
    mus: list[np.ndarray] = []
    params: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for s in range(0, len(x), batch):
            mu, post = model.encode(torch.as_tensor(np.asarray(x[s : s + batch]), device=device))
            mus.append(mu.double().cpu().numpy())
            for k, v in post.items():
                params.setdefault(k, []).append(v.double().cpu().numpy())
    return np.concatenate(mus), {k: np.concatenate(v) for k, v in params.items()}


def _encoder(model, device: str | torch.device) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: encode_points(model, x, device)[0]


def _posterior(model, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if "logvar" in params:
        return {"logvar": params["logvar"]}
    if "scale_tril" in params:
        L = params["scale_tril"]
        return {"cov": L @ np.swapaxes(L, 1, 2)}
    if getattr(model, "posterior", "none") != "none":
        raise ValueError(f"model.posterior is {model.posterior!r} but encode returned {sorted(params)}; "
                         "expected 'logvar' (diag) or 'scale_tril' (full)")
    return {}


def evaluate_checkpoint(
    model,
    dataset,
    *,
    metrics: Sequence[str],
    eval_cfg: dict[str, Any],
    seed: int,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Metric columns of one seed's model (a `workers.models.protocol.SeedModel`) on `dataset`.

    eval_cfg: {"n_eval", "n_train_supervised", "n_test_supervised"} (sweep.defaults.EVAL_DEFAULTS) and
    optionally "n_jobs" (DCI's parallel fits; default torch.get_num_threads(), which Ray sets to the
    trial's CPUs). Returns {column: value} for the columns of the requested metrics (METRIC_KEYS).
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"eval.metrics: unknown metric(s) {unknown}; available: {', '.join(METRICS)}")
    out: dict[str, Any] = {key: None for m in metrics for key in METRIC_KEYS[m]}
    n_eval = int(eval_cfg.get("n_eval", 10_000))
    n_sup_train = int(eval_cfg.get("n_train_supervised", 10_000))
    n_sup_test = int(eval_cfg.get("n_test_supervised", 5_000))
    n_jobs = int(eval_cfg.get("n_jobs") or torch.get_num_threads())
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        test = dataset.split_indices("test")
        idx = np.sort(np.random.default_rng(_stream(seed, "points")).choice(
            test, size=min(n_eval, len(test)), replace=False))
        mu, params = encode_points(model, dataset.observations_at(idx), device)
        if not np.all(np.isfinite(mu)):
            raise ValueError("encoder returned NaN or inf means (a diverged model?); metrics are undefined")
        active = active_mask_mu(mu)
        if "polarized" in metrics:
            pol = polarized(mu, **_posterior(model, params))
            out.update({k: pol[k] for k in METRIC_KEYS["polarized"]})
        if "dto" in metrics or "c_ima" in metrics:
            dec_mu = torch.as_tensor(mu, dtype=torch.float32, device=device)
            jac = jacobian_metrics(model.decode, dec_mu, active=active)
            out.update({k: jac[k] for m in ("dto", "c_ima") if m in metrics for k in METRIC_KEYS[m]})
        if dataset.num_factors == 0:
            return out
        factors = dataset.factors_at(idx)
        discrete = np.asarray(dataset.discrete, dtype=bool)
        if "ds" in metrics:
            out.update(ds(mu, factors, discrete=discrete, seed=_stream(seed, "ds")))
        if "mig" in metrics:
            out.update(mig(mu, factors, discrete=discrete))
        if "mig_sup" in metrics:
            out.update(mig_sup(mu, factors, discrete=discrete, active=active))
        encode = _encoder(model, device)
        if "dci" in metrics or "sap" in metrics:
            rng = np.random.default_rng(_stream(seed, "supervised"))
            c_tr, f_tr = encode_sample(encode, dataset, n_sup_train, rng)
            c_te, f_te = encode_sample(encode, dataset, n_sup_test, rng)
            if "dci" in metrics:
                res = dci(c_tr, f_tr, c_te, f_te, seed=_stream(seed, "dci"), discrete=discrete, n_jobs=n_jobs)
                out.update({k: res[k] for k in METRIC_KEYS["dci"]})
            if "sap" in metrics:
                out.update(sap(c_tr, f_tr, c_te, f_te, continuous=~discrete))
        if "factorvae" in metrics:
            out.update(factorvae_score(encode, dataset, seed=_stream(seed, "factorvae"), num_train=n_sup_train,
                                       num_eval=n_sup_test, num_variance_estimate=n_sup_train))
        if "betavae" in metrics:
            out.update(betavae_score(encode, dataset, seed=_stream(seed, "betavae"), num_train=n_sup_train,
                                     num_eval=n_sup_test))
        return out
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
