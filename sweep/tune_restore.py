"""The one adapter over Ray Tune state that Tune's public API does not expose.

An experiment's state (`experiment_state-<time>.json`, the newest of which `Tuner.restore` reads) can be
torn by a full disk or a kill mid-write; Tune then logs the failure and goes on with trials it cannot name.
`state_problem` reads that file first, so a damaged state is told apart before Tune is handed it.

`Tuner.restore` brings back the RunConfig pickled at the experiment's first fit, callbacks included; a
resumed sweep needs this run's callbacks (fresh progress counts, this driver's evaluator) and verbosity.
Tune 2.60 keeps that RunConfig at `Tuner._local_tuner._run_config`. A finished trial's metric history is kept
by Tune in `Trial.run_metadata` until the experiment ends (see `forget_metric_history`). This module is the
only code that touches either, and tests/test_tune_restore.py checks both against the pinned Ray.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

STATE_PATTERN = "experiment_state-*.json"  # Tune 2.60's TuneController.CKPT_FILE_TMPL


class TuneStateError(RuntimeError):
    """This Ray version keeps a restored Tuner's RunConfig somewhere the adapter does not know."""


def restored_run_config(tuner: Any) -> Any:
    """The RunConfig a restored `tune.Tuner` will run with (mutable in place)."""
    internal = getattr(tuner, "_local_tuner", None)
    run_config = getattr(internal, "_run_config", None)
    if run_config is None:
        raise TuneStateError("this Ray version's Tuner keeps no _local_tuner._run_config; orthosweep cannot give a "
                             "restored experiment this run's callbacks (pin ray[tune]==2.60.0 as pyproject does)")
    return run_config


def restore_tuner(path: str, trainable: Any, storage_filesystem: Any, callbacks: list[Any],
                  stop: Any = None) -> Any:
    """`tune.Tuner.restore` of the experiment at `path` (unfinished and errored trials resumed), running with
    `callbacks`, the stopper `stop` and verbosity 0 instead of those pickled at its first fit."""
    from ray import tune

    tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True,
                               storage_filesystem=storage_filesystem)
    run_config = restored_run_config(tuner)
    run_config.callbacks = callbacks
    run_config.stop = stop
    run_config.verbose = 0
    return tuner


def state_problem(path: str, storage_filesystem: Any) -> str | None:
    """Why the Tune experiment at `path` (a path in `storage_filesystem`) cannot be restored, or None when
    its newest experiment state reads back whole."""
    import pyarrow.fs as pafs

    try:
        infos = storage_filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        names = sorted(i.base_name for i in infos if fnmatch.fnmatch(i.base_name, STATE_PATTERN))
        if not names:
            return "it holds no experiment state"
        with storage_filesystem.open_input_stream(f"{path}/{names[-1]}") as f:
            state = json.loads(f.readall())
    except (OSError, ValueError) as e:
        return f"its experiment state cannot be read: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if not isinstance(state, dict) or not isinstance(state.get("trial_data"), list) or "runner_data" not in state:
        return "its experiment state lacks the trials Tune would restore"
    return None


def forget_metric_history(trial: Any) -> None:
    """Drop what Tune keeps of a finished trial's metric history: per reported metric its min/max/avg/last
    and the last-5/last-10 windows (about 20 KB per trial in the driver, and more in every experiment
    snapshot, where the windows are pickled). Tune keeps every trial until the experiment ends and reads that
    history only to rank trials by a metric, which a sweep never asks (the store is the record), so without
    this the driver's memory grows by it with every trial. The last result and the checkpoint stay. A Ray
    that keeps the history elsewhere is left alone (the test against the pinned Ray says so)."""
    metadata = getattr(trial, "run_metadata", None)
    if metadata is not None and hasattr(metadata, "metric_analysis") and hasattr(metadata, "metric_n_steps"):
        metadata.metric_analysis = {}  # assigning invalidates the trial's cached JSON state
        metadata.metric_n_steps = {}
