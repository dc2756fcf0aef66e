"""The one adapter over Ray Tune state that Tune's public API does not expose.

`Tuner.restore` brings back the RunConfig pickled at the experiment's first fit, callbacks included; a
resumed sweep needs this run's callbacks (fresh progress counts, this driver's evaluator) and verbosity.
Tune 2.60 keeps that RunConfig at `Tuner._local_tuner._run_config`; this module is the only code that
touches it, and tests/test_tune_restore.py checks it against the pinned Ray.
"""

from __future__ import annotations

from typing import Any


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


def restore_tuner(path: str, trainable: Any, storage_filesystem: Any, callbacks: list[Any]) -> Any:
    """`tune.Tuner.restore` of the experiment at `path` (unfinished and errored trials resumed), running with
    `callbacks` and verbosity 0 instead of those pickled at its first fit."""
    from ray import tune

    tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True,
                               storage_filesystem=storage_filesystem)
    run_config = restored_run_config(tuner)
    run_config.callbacks = callbacks
    run_config.verbose = 0
    return tuner
