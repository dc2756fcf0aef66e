"""One seed's model at a checkpoint -> its metric columns (the trainer inline, the evaluation stage later).

    row.update(evaluate_checkpoint(model, dataset, metrics=trial.eval.metrics, eval_cfg=trial.eval.as_dict(),
                                   seed=metric_seed(run_key), device=device))

Every metric comes from the registry (`workers.metrics.registry.METRICS`) and is computed from the
checkpoint's `CheckpointInputs` (which says which points each metric sees). Values are None where not
defined (factor metrics on datasets without factors, posterior values of an autoencoder, ...), never NaN.
Configuration-scope metrics (UDR) are not computed here: they need every restart (`workers.evaluation`).
`polarized_fraction` needs the training trace and is left to the trainer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from workers.metrics.inputs import CheckpointInputs
from workers.metrics.registry import METRICS

# An exception of these types means "this metric is undefined for this model" (a diverged encoder, a
# singular matrix), recorded with the row; anything else is a bug and propagates.
METRIC_ERRORS = (ValueError, RuntimeError, np.linalg.LinAlgError)


def checkpoint_metrics(metrics: Sequence[str]) -> list[str]:
    """The requested metrics computed per checkpoint (registry order kept as requested); unknown names
    raise ValueError naming the registry."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"eval.metrics: unknown metric(s) {unknown}; available: {', '.join(METRICS)}")
    return [m for m in metrics if METRICS[m].scope == "checkpoint"]


def evaluate_metrics(
    model: Any,
    dataset: Any,
    *,
    metrics: Sequence[str],
    eval_cfg: dict[str, Any],
    seed: int,
    device: str | torch.device = "cpu",
    seconds: dict[str, float] | None = None,
) -> dict[str, dict[str, Any] | Exception]:
    """metric -> its columns {column: value}, or the exception that made it undefined, for each requested
    checkpoint-scope metric. A non-finite encoder fails every metric with the same error. `seconds`, if
    given, receives each metric's wall time (inputs it is the first to need are counted with it)."""
    names = checkpoint_metrics(metrics)
    out: dict[str, dict[str, Any] | Exception] = {}
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        inputs = CheckpointInputs(model, dataset, eval_cfg, seed, device)
        try:
            inputs.codes  # noqa: B018 - a diverged encoder fails here, before any metric runs
        except METRIC_ERRORS as e:
            return {name: e for name in names}
        for name in names:
            metric = METRICS[name]
            if metric.needs_factors and dataset.num_factors == 0:
                out[name] = {col: None for col in metric.columns}
                continue
            assert metric.compute is not None
            t0 = time.perf_counter()
            try:
                values = metric.compute(inputs)
            except METRIC_ERRORS as e:
                out[name] = e
                continue
            finally:
                if seconds is not None:
                    seconds[name] = time.perf_counter() - t0
            out[name] = {col: values[col] for col in metric.columns}
        return out
    finally:
        if was_training and hasattr(model, "train"):
            model.train()


def evaluate_checkpoint(
    model: Any,
    dataset: Any,
    *,
    metrics: Sequence[str],
    eval_cfg: dict[str, Any],
    seed: int,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Metric columns of one seed's model (a `workers.models.protocol.SeedModel`) on `dataset`: {column:
    value} for the requested checkpoint-scope metrics. The first undefined metric raises its exception."""
    out: dict[str, Any] = {}
    for result in evaluate_metrics(model, dataset, metrics=metrics, eval_cfg=eval_cfg, seed=seed,
                                   device=device).values():
        if isinstance(result, Exception):
            raise result
        out.update(result)
    return out
