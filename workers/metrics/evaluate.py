"""The checkpoint evaluation the trainer calls: one seed's model -> one row's metric columns.

    row.update(evaluate_checkpoint(model, dataset, metrics=trial.eval.metrics, eval_cfg=trial.eval.as_dict(),
                                   seed=metric_seed(run_key), device=device))

Every metric comes from the registry (`workers.metrics.registry.METRICS`) and is computed from the
checkpoint's `CheckpointInputs` (which says which points each metric sees). The result holds exactly the
registry columns of the requested metrics: None where a value is not defined (factor metrics on datasets
without factors, posterior values of an autoencoder, ...), never a NaN. `polarized_fraction` needs the
training trace and is left to the trainer (`workers.metrics.polarized.polarized_fraction`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from workers.metrics.inputs import CheckpointInputs
from workers.metrics.registry import METRICS


def evaluate_checkpoint(
    model: Any,
    dataset: Any,
    *,
    metrics: Sequence[str],
    eval_cfg: dict[str, Any],
    seed: int,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Metric columns of one seed's model (a `workers.models.protocol.SeedModel`) on `dataset`.

    Returns {column: value} for the columns of the requested metrics (their registry entries).
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"eval.metrics: unknown metric(s) {unknown}; available: {', '.join(METRICS)}")
    out: dict[str, Any] = {col: None for m in metrics for col in METRICS[m].columns}
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        inputs = CheckpointInputs(model, dataset, eval_cfg, seed, device)
        inputs.codes  # noqa: B018 - a diverged encoder fails here, before any metric runs
        for name in metrics:
            metric = METRICS[name]
            if metric.needs_factors and dataset.num_factors == 0:
                continue
            values = metric.compute(inputs)
            out.update({col: values[col] for col in metric.columns})
        return out
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
