"""TensorBoard event files of a training trial (`train.loggers: [tensorboard]`), written as it trains.

    <study>/tensorboard/<trial_id>/seed_<seed>/   one run per seed
    <study>/tensorboard/<trial_id>/mean/          the mean over the trial's live seeds

Tags: `train/<column>` for every trace row (loss, recon, kl, kl_active, delta_kl, active_units on the
training batch; `train/kl_z<j>` per latent where the model has a posterior; `train/steps_per_second` in
`mean`), `checkpoint/<column>` for every numeric column of a checkpoint row (held-out loss, recon, kl and
the scalar metrics), all at the training step. `tensorboard --logdir <study>/tensorboard` overlays the
seeds of a trial as runs. A restored trial purges the events from its resume step on (TensorBoard's
`purge_step`), so replayed steps are not drawn twice. The writer is torch.utils.tensorboard's, which needs
the `tensorboard` package (`pip install 'orthosweep[tensorboard]'`). The Parquet trace stays the record.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from workers.store.layout import join_uri
from workers.trial import TrialSpec

TRACE_TAGS = ("loss", "recon", "kl", "kl_active", "delta_kl", "active_units")
SKIP = {"schema_version", "seed", "latent_dim", "epoch", "epochs", "step", "attempt", "wall_seconds", "beta",
        "metrics_seconds"}


def _scalar(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def event_dir(study_uri: str, trial_id: str) -> str:
    """Where a trial's event files go: `<study>/tensorboard/<trial_id>`."""
    return join_uri(study_uri, "tensorboard", trial_id)


class Curves:
    """The event writers of one trial: one per seed and one for the mean over seeds."""

    def __init__(self, folder: str, seeds: tuple[int, ...], resume_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        def writer(name: str) -> Any:
            return SummaryWriter(f"{folder}/{name}", purge_step=resume_step, flush_secs=3600)

        self.seeds = {s: writer(f"seed_{s}") for s in seeds}
        self.mean = writer("mean")

    @staticmethod
    def open(study_uri: str, trial: TrialSpec, resume_step: int | None = None) -> Curves | None:
        """The trial's writers, or None (with a warning) where they cannot be written: storage that is not
        a local folder, or no `tensorboard` package."""
        if "://" in study_uri and not study_uri.startswith("file://"):
            warnings.warn(f"train.loggers tensorboard: storage {study_uri} is not a local folder; TensorBoard "
                          "event files are written only to local (or shared) folders", RuntimeWarning, stacklevel=2)
            return None
        try:
            return Curves(event_dir(study_uri.removeprefix("file://"), trial.trial_id), trial.seeds, resume_step)
        except ImportError as e:
            warnings.warn(f"train.loggers tensorboard: {e}; install it with pip install 'orthosweep[tensorboard]'",
                          RuntimeWarning, stacklevel=2)
            return None

    def trace(self, step: int, rows: list[dict[str, Any]]) -> None:
        """Trace rows of the live seeds at `step` (`workers.train`'s trace columns)."""
        sums: dict[str, list[float]] = {}
        for row in rows:
            w = self.seeds[int(row["seed"])]
            values = {f"train/{k}": _scalar(row.get(k)) for k in TRACE_TAGS}
            for j, v in enumerate(row.get("kl_per_dim") or ()):
                values[f"train/kl_z{j}"] = _scalar(v)
            for tag, v in values.items():
                if v is not None:
                    w.add_scalar(tag, v, step)
                    sums.setdefault(tag, []).append(v)
        self._means(sums, step)
        rate = _scalar(rows[0].get("steps_per_second")) if rows else None
        if rate is not None:
            self.mean.add_scalar("train/steps_per_second", rate, step)

    def checkpoint(self, step: int, epoch: int, rows: list[dict[str, Any]]) -> None:
        """Checkpoint rows (one per seed) at `step`: every numeric column as `checkpoint/<column>`."""
        sums: dict[str, list[float]] = {}
        for row in rows:
            w = self.seeds[int(row["seed"])]
            for k, v in row.items():
                x = None if k in SKIP else _scalar(v)
                if x is not None:
                    w.add_scalar(f"checkpoint/{k}", x, step)
                    sums.setdefault(f"checkpoint/{k}", []).append(x)
        self._means(sums, step)
        self.mean.add_scalar("checkpoint/epoch", float(epoch), step)
        self.flush()

    def _means(self, sums: dict[str, list[float]], step: int) -> None:
        for tag, vs in sums.items():
            self.mean.add_scalar(tag, sum(vs) / len(vs), step)

    def flush(self) -> None:
        for w in (*self.seeds.values(), self.mean):
            w.flush()

    def close(self) -> None:
        for w in (*self.seeds.values(), self.mean):
            w.close()
