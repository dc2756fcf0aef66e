"""The Tune side of `sweep.storage_errors`: a callback that hears every trial failure and a stopper that ends
the experiment at the first one that is a storage failure, before Tune retries the trial."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray import tune
from ray.tune.stopper import Stopper

from sweep.progress import trial_error_text
from sweep.storage_errors import DetailsLog, StorageFault, fault_in, fault_of


class StorageGuard(tune.Callback):
    """Watches one experiment's trials; `fault` is the first storage failure seen (None while there is none).

    Tune calls `on_trial_recover` before it retries a failed trial and `on_trial_error` when it gives up;
    either way, a storage failure sets `fault` and `stopper` stops every trial at the controller's next step.
    """

    def __init__(self, study_uri: str, log: DetailsLog):
        self.study_uri = study_uri
        self.log = log
        self.fault: StorageFault | None = None
        self.stopper = _StopOnFault(self)

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its RunConfig; a restored run gets a fresh guard
        return {"study_uri": self.study_uri, "log": self.log, "fault": None, "stopper": None}

    def seen(self, fault: StorageFault) -> None:
        if self.fault is None:
            self.fault = fault

    def _check(self, trial: Any) -> None:
        text = trial_error_text(trial, limit=20_000)
        fault = fault_in(text, self.study_uri)
        if fault is not None:
            self.seen(fault)
            self.log.add(f"trial {trial}:\n{text}")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._check(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._check(trial)

    def guarded(self, record: Callable[[dict[str, Any], str], int]) -> Callable[[dict[str, Any], str], int]:
        """`record` (writes a permanently failed trial's rows) except for storage failures: those are not
        the restarts' fault, and their rows could not be written either."""

        def record_unless_storage(trial: dict[str, Any], error: str) -> int:
            fault = fault_in(error, self.study_uri)
            if fault is None:
                try:
                    return record(trial, error)
                except Exception as e:
                    fault = fault_of(e, self.study_uri)
                    if fault is None:
                        raise
            self.seen(fault)
            return 0

        return record_unless_storage


class _StopOnFault(Stopper):
    def __init__(self, guard: StorageGuard):
        self.guard = guard

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.guard.fault is not None
