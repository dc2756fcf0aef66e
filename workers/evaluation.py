"""The evaluation stage on a worker: score stored checkpoints without retraining (design.md §6–7).

    evaluate_stored_checkpoint(job)   one (run_key, epoch): its checkpoint-scope metrics
    evaluate_stored_group(job)        one (config_key, epoch): a configuration-scope metric (UDR) over
                                      every restart of the configuration

Each loads the seed's state dict from `models/<run_key>/e<epoch>.pt`, rebuilds the model from the
`config` column, computes on the task's device (CUDA when Ray gave the task a GPU share, else CPU) and
writes one `evaluations` row per (run_key, epoch, metric) through the atomic sink. The metric seeds are
those of inline evaluation (`metric_seed(run_key)`), so a metric scored here equals the one the trainer
would have written. Jobs are plain dicts (they travel as Ray task arguments).
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import numpy as np
import torch

from workers.checkpoint import load_torch
from workers.data import load
from workers.metrics.evaluate import METRIC_ERRORS, evaluate_metrics
from workers.metrics.inputs import encode_points, metric_seed
from workers.metrics.polarized import active_mask_mu, polarized
from workers.models.vae import BatchedVAE
from workers.store.layout import model_uri
from workers.store.write import write_rows
from workers.trial import RestartConfig

UDR_POINTS = 1_000  # inputs every restart of a configuration is encoded on (disentanglement_lib's UDR)
UDR_KL_THRESHOLD = 0.01  # nats: a latent with a larger mean KL is active (disentanglement_lib's UDR)

_IDENTITY = ("run_key", "config_key", "dataset", "model", "seed", "epoch")


def task_device() -> torch.device:
    """CUDA when this process sees a GPU (Ray sets CUDA_VISIBLE_DEVICES from the task's share), else CPU."""
    return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")


@functools.lru_cache(maxsize=4)
def _dataset(name: str, options_json: str) -> Any:
    return load(name, **json.loads(options_json))


def load_dataset(config: RestartConfig) -> Any:
    """The restart's dataset, opened once per worker process (tasks of one study reuse it)."""
    return _dataset(config.dataset, json.dumps(config.dataset_options, sort_keys=True))


def load_seed_model(study_uri: str, run_key: str, epoch: int, config: RestartConfig, dataset: Any,
                    device: torch.device) -> Any:
    """The stored model of one restart at one epoch as a `workers.models.protocol.SeedModel`."""

    vae = BatchedVAE(config, dataset.observation_shape)
    return vae.load_seed(load_torch(model_uri(study_uri, run_key, epoch)), device)


def _row(study: str, checkpoint: dict[str, Any], metric: str, attempt: int) -> dict[str, Any]:
    return {"study": study, **{k: checkpoint[k] for k in _IDENTITY}, "metric": metric, "attempt": attempt}


def evaluate_stored_checkpoint(job: dict[str, Any]) -> dict[str, Any]:
    """job: {"study", "study_uri", "checkpoint": StoredCheckpoint as dict, "metrics": [...], "eval": eval
    settings dict, "attempt"}. Writes the evaluations rows; returns {"rows", "failed", "seconds"}."""
    t0 = time.perf_counter()
    cp = job["checkpoint"]
    config = RestartConfig.from_dict(json.loads(cp["config"]))
    dataset = load_dataset(config)
    device = task_device()
    model = load_seed_model(job["study_uri"], cp["run_key"], int(cp["epoch"]), config, dataset, device)
    seconds: dict[str, float] = {}
    results = evaluate_metrics(model, dataset, metrics=job["metrics"], eval_cfg=job["eval"],
                               seed=metric_seed(cp["run_key"]), device=device, seconds=seconds)
    rows = []
    for metric, result in results.items():
        row = _row(job["study"], cp, metric, int(job.get("attempt", 0))) | {"wall_seconds": seconds.get(metric)}
        if isinstance(result, Exception):
            row.update(status="failed", error=f"{type(result).__name__}: {result}")
        else:
            row.update(status="ok", **result)
        rows.append(row)
    write_rows(job["study_uri"], "evaluations", rows)
    return {"rows": len(rows), "failed": sum(r["status"] == "failed" for r in rows),
            "seconds": time.perf_counter() - t0}


def _udr_inputs(models: list[Any], dataset: Any, config_key: str, device: torch.device,
                n_points: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Codes (N, d) of every model on the same N test points, and each model's active-latent mask."""
    from workers.metrics.udr import active_dims_from_kl

    test = dataset.split_indices("test")
    rng = np.random.default_rng(int(config_key[:8], 16))
    idx = np.sort(rng.choice(test, size=min(n_points, len(test)), replace=False))
    x = dataset.observations_at(idx)
    codes, active = [], []
    for model in models:
        mu, post = encode_points(model, x, device)  # no_grad inside
        if not np.all(np.isfinite(mu)):
            raise ValueError("encoder returned NaN or inf means (a diverged model?); UDR is undefined")
        codes.append(mu)
        if "logvar" in post:
            active.append(active_dims_from_kl(np.asarray(polarized(mu, post["logvar"])["kl_per_dim"]),
                                              UDR_KL_THRESHOLD))
        else:  # no diagonal posterior: a latent is active when its mean varies
            active.append(active_mask_mu(mu))
    return codes, active


def evaluate_stored_group(job: dict[str, Any]) -> dict[str, Any]:
    """job: {"study", "study_uri", "metric": "udr", "config_key", "epoch", "checkpoints": [StoredCheckpoint
    dicts], "attempt"}. Scores every restart of one configuration at one epoch; writes one row each."""
    from workers.metrics.udr import udr

    t0 = time.perf_counter()
    members = job["checkpoints"]
    config = RestartConfig.from_dict(json.loads(members[0]["config"]))
    dataset = load_dataset(config)
    device = task_device()
    rows = [_row(job["study"], cp, job["metric"], int(job.get("attempt", 0))) for cp in members]
    try:
        models = [load_seed_model(job["study_uri"], cp["run_key"], int(cp["epoch"]), config, dataset, device)
                  for cp in members]
        codes, active = _udr_inputs(models, dataset, job["config_key"], device, UDR_POINTS)
        scores = udr(codes, active, seed=int(job["config_key"][:8], 16))
        for i, row in enumerate(rows):
            row.update(status="ok", **{k: _finite(v[i]) for k, v in scores.items()})
    except METRIC_ERRORS as e:
        for row in rows:
            row.update(status="failed", error=f"{type(e).__name__}: {e}")
    seconds = time.perf_counter() - t0
    for row in rows:
        row["wall_seconds"] = seconds
    write_rows(job["study_uri"], "evaluations", rows)
    return {"rows": len(rows), "failed": sum(r["status"] == "failed" for r in rows), "seconds": seconds}


def _finite(v: Any) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None
