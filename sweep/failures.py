"""Recording restarts whose trial failed for good: one `failed` row each, at the final epoch, with the error."""

from __future__ import annotations

from typing import Any

from sweep.store import completed_run_keys
from workers.sink import write_rows


def restart_columns(study: str, trial: dict[str, Any], seed: int, run_key: str) -> dict[str, Any]:
    """The `checkpoints` columns that identify one restart of `trial` (a `TrialSpec.to_dict()`)."""
    cfg = trial["config"]
    return {
        "study": study, "run_key": run_key, "config_key": trial["config_key"], "trial_id": trial["trial_id"],
        "dataset": cfg["dataset"], "model": cfg["model"], "arch": cfg["arch"]["kind"],
        "latent_dim": cfg["latent_dim"], "seed": seed, "hparams": cfg["hparams"], "config": cfg,
        "beta": cfg["hparams"].get("beta"), "epochs": cfg["epochs"],
    }


def failed_rows(study: str, trial: dict[str, Any], error: str, skip: set[str]) -> list[dict[str, Any]]:
    """Checkpoint rows (status `failed`, epoch = epochs) for the trial's restarts not in `skip`.

    `trial` is `TrialSpec.to_dict()`. The row sits at the final epoch, so the deduplicated view shows the
    restart's outcome there; a later successful run (resume) writes a newer row that wins.
    """
    epochs = trial["config"]["epochs"]
    return [{**restart_columns(study, trial, seed, run_key), "epoch": epochs, "status": "failed", "error": error}
            for seed, run_key in zip(trial["seeds"], trial["run_keys"], strict=True) if run_key not in skip]


def record_failed_trial(study_uri: str, study: str, trial: dict[str, Any], error: str) -> int:
    """Write `failed` rows for the trial's restarts that the store does not hold as finished; returns how many."""
    cfg = trial["config"]
    done = completed_run_keys(study_uri, trial["run_keys"], (cfg["dataset"], cfg["model"]))
    rows = failed_rows(study, trial, error, done)
    write_rows(study_uri, "checkpoints", rows)
    return len(rows)
