"""Live progress of a sweep: a Tune callback printing one compact line and publishing `tune/driver.json`.

The line counts restarts (not trials): done/total, failed, trials running, elapsed and an ETA from the
rate of this run. The same numbers go to `<study_dir>/tune/driver.json` with a heartbeat, so
`orthosweep status` can show what is running from another shell (or another machine, for s3://).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from ray import tune

from sweep.status import format_seconds
from sweep.tune_restore import forget_metric_history
from workers.store import layout

QUIET_PRINT_S = 60.0  # with nothing changing, one progress line a minute


class SweepProgress(tune.Callback):
    """Counts restarts as their trials reach the final epoch; calls `on_failure` for trials that fail for good.

    Each trial's Tune config holds its TrialSpec.to_dict() under "trial" (`sweep.planned_search`).
    `done_keys`: run keys already complete in the store when the sweep started (counted as done).
    `on_failure(trial_dict, error_text) -> int`: records a permanently failed trial, returns the number of
    restarts recorded as failed.
    """

    def __init__(self, study_uri: str, total: int, done_keys: set[str],
                 on_failure: Callable[[dict[str, Any], str], int], *, out: TextIO | None = None,
                 every: float = 5.0, experiment: str = ""):
        self.study_uri = study_uri
        self.total = total
        self.done_keys = set(done_keys)
        self.done_at_start = len(self.done_keys)
        self._done_at_start_keys = frozenset(self.done_keys)
        self.failed_keys: set[str] = set()
        self.running: dict[str, list[str]] = {}
        self.started_keys: set[str] = set()
        self.partial: dict[str, float] = {}  # trial id -> restarts' worth of epochs trained (unfinished trials)
        self._last_counts: tuple[int, ...] = ()
        self.on_failure = on_failure
        self.out = out or sys.stdout
        self.every = every
        self.experiment = experiment
        self.started = time.time()
        self._last_print = 0.0
        self._last_line_at = 0.0

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its RunConfig (callbacks included)
        state = dict(self.__dict__)
        state["out"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.out = self.out or sys.stdout

    # -- Tune hooks -------------------------------------------------------------------------------
    def _spec(self, trial: Any) -> dict[str, Any]:
        return trial.config["trial"]

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        keys = list(self._spec(trial)["run_keys"])
        self.running[trial.trial_id] = keys
        self.started_keys.update(keys)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        spec = self._spec(trial)
        epochs = spec["config"]["epochs"]
        if result.get("epoch") == epochs:
            self.done_keys.update(spec["run_keys"])
            self.partial.pop(trial.trial_id, None)
        elif epochs and isinstance(result.get("epoch"), int):
            self.partial[trial.trial_id] = len(spec["run_keys"]) * result["epoch"] / epochs

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.pop(trial.trial_id, None)
        self.partial.pop(trial.trial_id, None)
        self.done_keys.update(self._spec(trial)["run_keys"])
        forget_metric_history(trial)  # Tune keeps every finished trial until the experiment ends
        self._report(force=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.pop(trial.trial_id, None)
        self.partial.pop(trial.trial_id, None)
        spec = self._spec(trial)
        self.on_failure(spec, trial_error_text(trial))
        self.failed_keys.update(k for k in spec["run_keys"] if k not in self.done_keys)
        self._report(force=True)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._report(force=False)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._report(force=True, finished=True)

    # -- output -----------------------------------------------------------------------------------
    @property
    def done(self) -> int:
        return len(self.done_keys)

    @property
    def trained(self) -> int:
        """Restarts whose trials this run started and that were not complete when it began."""
        return len(self.started_keys) - len(self.started_keys & self._done_at_start_keys)

    @property
    def failed(self) -> int:
        return len(self.failed_keys - self.done_keys)

    def line(self) -> str:
        """One line: restarts done/total, failed, running trials, elapsed, ETA.

        The ETA extrapolates this run's rate in restarts' worth of work, counting the epochs that unfinished
        trials have reported (so it is available before the first seed block completes).
        """
        elapsed = time.time() - self.started
        in_progress = sum(self.partial.values())
        work = self.done - self.done_at_start + in_progress
        remaining = self.total - self.done - self.failed
        if not remaining:
            eta = "0:00:00"
        elif work > 0:
            eta = format_seconds(elapsed / work * (remaining - in_progress))
        else:
            eta = "?"
        return (f"[orthosweep] {self.done}/{self.total} restarts done, {self.failed} failed, "
                f"{len(self.running)} trials running, elapsed {format_seconds(elapsed)}, ETA {eta}")

    def _report(self, *, force: bool, finished: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_print < self.every:
            return
        self._last_print = now
        counts = (self.done, self.failed, len(self.running), round(sum(self.partial.values()), 1))
        if counts != self._last_counts or finished or now - self._last_line_at >= QUIET_PRINT_S:
            print(self.line(), file=self.out, flush=True)
            self._last_counts, self._last_line_at = counts, now
        try:
            layout.write_driver_state(self.study_uri, {
                "experiment": self.experiment, "host": socket.gethostname(), "pid": os.getpid(),
                "started": self.started, "heartbeat": now, "finished": finished,
                "total": self.total, "done": self.done, "failed": self.failed,
                "running": self.running,
            })
        except OSError as e:  # progress must never stop the sweep; said once (a full disk stays full)
            if not getattr(self, "_state_unwritable", False):
                print(f"[orthosweep] could not write driver state: {e}", file=sys.stderr)
            self._state_unwritable = True


def trial_error_text(trial: Any, limit: int = 4000) -> str:
    """The error of a failed Tune trial as text (its error file, else the pickled exception), truncated."""
    text = ""
    path = getattr(trial, "error_file", None)
    if path and os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    if not text:
        try:
            err = trial.get_pickled_error() or trial.get_error()
            text = repr(err) if err is not None else ""
        except Exception as e:  # noqa: BLE001 - the message is best effort
            text = f"unknown error ({type(e).__name__})"
    text = text.strip() or "unknown error"
    return text if len(text) <= limit else "…" + text[-limit:]
