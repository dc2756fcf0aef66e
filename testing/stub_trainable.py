"""A near-zero-cost trainable that honours the trainable contract, for measuring and testing the sweep machinery.

Same contract as `workers.train.tune_trainable`: config = {"trial": TrialSpec.to_dict(), "study", "study_uri"};
one `checkpoints` row per (restart, checkpoint epoch) through `workers.store.write.write_rows`; one `tune.report`
per checkpoint epoch with a Tune checkpoint; resumes after the epoch of `tune.get_checkpoint()`. No model is
trained: the metric values are a fixed function of (run_key, epoch), so any two runs of a study — disturbed
or not — must store identical values.

Knobs (environment of the Ray workers, for tests and benchmarks):
  ORTHOSWEEP_STUB_SLEEP   seconds of "training" per epoch (default 0)
  ORTHOSWEEP_STUB_FAIL    comma-separated seeds whose trial raises at every attempt (a permanent failure)
  ORTHOSWEEP_STUB_LOG     file to which one line "run_key epoch" is appended per trained (restart, epoch)
  ORTHOSWEEP_STUB_NOSPACE a file: while it exists, every store write raises ENOSPC (a full disk, injected)
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import time
from typing import Any

from workers.store.write import code_version, write_rows
from workers.trial import TrialSpec

STATE_FILE = "stub_state.json"


def stub_value(run_key: str, epoch: int, salt: int) -> float:
    """A deterministic number in [0, 1) from (run_key, epoch, salt)."""
    return ((int(run_key[:12], 16) * 2654435761 + epoch * 97 + salt * 7919) % 1_000_003) / 1_000_003


def stub_rows(trial: TrialSpec, study: str, epoch: int, wall: float, attempt: int) -> list[dict[str, Any]]:
    """The checkpoints rows of every restart of `trial` at `epoch` (values: `stub_value`)."""
    version = code_version()
    return [{
        **trial.restart_columns(study, i), "epoch": epoch, "step": epoch,
        "status": "ok", "wall_seconds": wall, "attempt": attempt, "code_version": version,
        "loss": stub_value(rk, epoch, 1), "recon": stub_value(rk, epoch, 2), "kl": stub_value(rk, epoch, 3),
        "dto": stub_value(rk, epoch, 4), "mig": stub_value(rk, epoch, 5),
    } for i, rk in enumerate(trial.run_keys)]


def tune_trainable(config: dict[str, Any]) -> None:
    """Tune function trainable: the trial's checkpoint epochs, each written to the store and reported."""
    from ray import tune

    trial = TrialSpec.from_dict(config["trial"])
    study, study_uri = config["study"], config["study_uri"]
    sleep = float(os.environ.get("ORTHOSWEEP_STUB_SLEEP", "0") or 0)
    fail_seeds = {int(s) for s in os.environ.get("ORTHOSWEEP_STUB_FAIL", "").split(",") if s.strip()}
    log = os.environ.get("ORTHOSWEEP_STUB_LOG")
    nospace = os.environ.get("ORTHOSWEEP_STUB_NOSPACE")
    start_epoch, attempt = -1, 0
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d, open(os.path.join(d, STATE_FILE)) as f:
            state = json.load(f)
        start_epoch, attempt = state["epoch"], state["attempt"] + 1
    t0 = time.time()
    checkpoints = set(trial.checkpoints)
    for epoch in range(start_epoch + 1, trial.config.epochs + 1):
        if epoch > 0:  # epoch 0 is the state before training
            if fail_seeds & set(trial.seeds):
                raise RuntimeError(f"stub failure injected for seeds {sorted(fail_seeds & set(trial.seeds))}")
            if sleep:
                time.sleep(sleep)
            if log:
                with open(log, "a") as f:
                    f.writelines(f"{rk} {epoch}\n" for rk in trial.run_keys)
        if epoch not in checkpoints:
            continue
        if nospace and os.path.exists(nospace):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), study_uri)
        write_rows(study_uri, "checkpoints", stub_rows(trial, study, epoch, time.time() - t0, attempt))
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, STATE_FILE), "w") as f:
                json.dump({"epoch": epoch, "attempt": attempt}, f)
            tune.report({"epoch": epoch, "restarts_done": len(trial.run_keys) if epoch == max(checkpoints) else 0,
                         "diverged": 0}, checkpoint=tune.Checkpoint.from_directory(tmp))
