"""Tune's search algorithm for a planned sweep: the plan's trials in order, each in its own trial's config.

Each trial's Tune config carries its own contract, `{"trial": TrialSpec.to_dict()}` (about a kilobyte) next to
the experiment's constant `study` and `study_uri`, handed out one trial at a time. Two cheaper-looking forms
grow with the study once per trial: a `tune.grid_search` over the trials (Tune deep-copies the whole grid for
every variant it generates, and generates them all when the experiment starts) and a plan shared through
`tune.with_parameters` (every trial deserialises all of it). What Tune snapshots of this searcher is a count.

A restored experiment continues only the trials its own state holds (pending, running, errored): its searcher
comes back from Tune's pickled config without the plan and hands out nothing more; the driver then plans
what the store says is left as a new experiment (design.md §9).
"""

from __future__ import annotations

import json
import os
from collections import deque
from typing import Any

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
