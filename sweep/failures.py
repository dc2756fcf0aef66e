"""Recording restarts whose trial failed for good: one `failed` row each, at the final epoch, with the error."""

from __future__ import annotations

from typing import Any

from workers.store.restarts import completed_run_keys
from workers.store.write import write_rows
from workers.trial import TrialSpec


def failed_rows(study: str, trial: TrialSpec, error: str, skip: set[str]) -> list[dict[str, Any]]:
    """Checkpoint rows (status `failed`, epoch = epochs) for the trial's restarts not in `skip`.

    The row sits at the final epoch, so the deduplicated view shows the restart's outcome there; a later
    successful run (resume) writes a newer row that wins.
    """
    return [{**trial.restart_columns(study, i), "epoch": trial.config.epochs, "status": "failed", "error": error}
            for i, run_key in enumerate(trial.run_keys) if run_key not in skip]


def record_failed_trial(study_uri: str, study: str, trial: dict[str, Any], error: str) -> int:
    """Write `failed` rows for the trial's restarts (`trial`: a `TrialSpec.to_dict()`) that the store does not
    hold as finished; returns how many."""
    spec = TrialSpec.from_dict(trial)
    done = completed_run_keys(study_uri, spec.run_keys, spec.partition)
    rows = failed_rows(study, spec, error, done)
    write_rows(study_uri, "checkpoints", rows)
    return len(rows)
