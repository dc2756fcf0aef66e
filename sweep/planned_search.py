"""Tune's search algorithm and scheduler for a planned sweep: the plan's trials in order, each in its own
trial's config, started first in, first out.

Each trial's Tune config carries its own contract, `{"trial": TrialSpec.to_dict()}` (about a kilobyte) next to
the experiment's constant `study` and `study_uri`, handed out one trial at a time. Two cheaper-looking forms
grow with the study once per trial: a `tune.grid_search` over the trials (Tune deep-copies the whole grid for
every variant it generates, and generates them all when the experiment starts) and a plan shared through
`tune.with_parameters` (every trial deserialises all of it). What Tune snapshots of this searcher is a count.
Tune's own FIFO scheduler looks for the next trial to start among every trial of the experiment, finished ones
first, so `UnfinishedFifo` keeps the unfinished ones in the order Tune added them.

A restored experiment continues only the trials its own state holds (pending, running, errored): its searcher
comes back from Tune's pickled config without the plan and hands out nothing more; the driver then plans
what the store says is left as a new experiment (design.md §9).
"""

from __future__ import annotations

import json
import os
from collections import deque
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler
from ray.tune.search import Searcher

PENDING_ENV = "TUNE_MAX_PENDING_TRIALS_PG"


def keep_trials_pending(cluster_cpus: float) -> None:
    """Let Tune keep as many trials pending as it does for a grid (200, or 1.1 per cluster CPU), unless the
    user chose (PENDING_ENV): for any other searcher it keeps one, and pending trials are what a cluster's
    autoscaler scales on and what lets many trials start at once."""
    os.environ.setdefault(PENDING_ENV, str(max(200, int(cluster_cpus * 1.1))))


class PlannedTrials(Searcher):
    """Hands out `trials` (TrialSpec.to_dict() each, in plan order) as `{"trial": ...}` configs, then FINISHED."""

    def __init__(self, trials: list[dict[str, Any]]):
        super().__init__()
        self._left: deque[dict[str, Any]] | None = deque(trials)
        self.handed_out = 0

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its TuneConfig, this searcher included, once
        return {**self.__dict__, "_left": None}

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if not self._left:
            return Searcher.FINISHED
        self.handed_out += 1
        return {"trial": self._left.popleft()}  # Tune keeps its own copy in the trial

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        pass  # the plan is fixed: nothing is learnt from results

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as f:
            json.dump({"handed_out": self.handed_out}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as f:
            self.handed_out = int(json.load(f)["handed_out"])


class UnfinishedFifo(FIFOScheduler):
    """FIFOScheduler's choice (the first pending trial, else the first paused one, in the order Tune added
    them) made among the trials not finished, not all the experiment's (Tune's scan costs O(trials) per trial
    started). A retried trial is added again, at the end, as Tune re-queues it."""

    _FINISHED = (Trial.TERMINATED, Trial.ERROR)

    def __init__(self) -> None:
        super().__init__()
        self._unfinished: dict[Trial, None] = {}  # insertion-ordered

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its TuneConfig, this scheduler included, once
        return {**self.__dict__, "_unfinished": {}}

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        if trial.status not in self._FINISHED:  # a restored experiment adds its finished trials too
            self._unfinished[trial] = None

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self._unfinished.pop(trial, None)

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> None:
        self._unfinished.pop(trial, None)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._unfinished.pop(trial, None)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        for trial in [t for t in self._unfinished if t.status in self._FINISHED]:  # finished unannounced
            del self._unfinished[trial]
        for status in (Trial.PENDING, Trial.PAUSED):
            for trial in self._unfinished:
                if trial.status == status:
                    return trial
        return None
