"""The adapter over Tune's private state (sweep.tune_restore) against the pinned Ray: a restored experiment
runs with the callbacks and verbosity given now, not those pickled at its first fit; a finished trial's metric
history is forgotten, in memory and in its snapshot state."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from sweep.tune_restore import TuneStateError, forget_metric_history, restore_tuner, restored_run_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _trainable(config: dict[str, Any]) -> None:
    from ray import tune

    tune.report({"value": config["x"]})


def test_restored_tuner_runs_with_the_new_callbacks(tmp_path: Path) -> None:
    import ray
    from ray import tune

    class Seen(tune.Callback):
        def __init__(self) -> None:
            self.results: list[float] = []

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            self.results.append(result["value"])

    first, second = Seen(), Seen()
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/ by name
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        tune.Tuner(_trainable, param_space={"x": tune.grid_search([1.0, 2.0])},
                   run_config=tune.RunConfig(name="exp", storage_path=str(tmp_path), verbose=1,
                                             callbacks=[first])).fit()
        assert sorted(first.results) == [1.0, 2.0]
        tuner = restore_tuner(str(tmp_path / "exp"), _trainable, None, [second])
        config = restored_run_config(tuner)
        assert config.callbacks == [second] and config.verbose == 0
        tuner.fit()  # every trial is finished: nothing reruns, and the old callback hears nothing more
        assert sorted(first.results) == [1.0, 2.0]
    finally:
        ray.shutdown()


def test_a_tuner_without_the_known_private_state_is_refused_with_the_pin_named() -> None:
    with pytest.raises(TuneStateError, match="ray\\[tune\\]==2.60.0"):
        restored_run_config(object())


def test_a_finished_trials_metric_history_is_forgotten_and_its_state_still_restores() -> None:
    from ray.tune.experiment import Trial

    trial = Trial("trainable", config={"x": 1}, stub=True)
    for i in range(12):
        trial.update_last_result({"epoch": i, "loss": 1.0 / (i + 1), "training_iteration": i + 1})
    assert trial.run_metadata.metric_analysis and trial.run_metadata.metric_n_steps  # what Tune 2.60 keeps
    before = len(trial.get_json_state()[1])
    forget_metric_history(trial)
    assert trial.run_metadata.metric_analysis == {} and trial.run_metadata.metric_n_steps == {}
    _, metadata = trial.get_json_state()  # the cached snapshot state is rebuilt without the history
    assert len(metadata) < before / 2
    trial.restore_run_metadata(metadata)  # what a restored experiment reads back
    assert trial.last_result["epoch"] == 11 and trial.run_metadata.metric_analysis == {}
    forget_metric_history(object())  # nothing to forget: left alone
