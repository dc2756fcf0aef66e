"""workers.train.tune_trainable under a real Ray Tune: a trial killed after a checkpoint is retried by Tune,
resumes from its Tune checkpoint and ends with exactly the parameters of an uninterrupted run."""

from __future__ import annotations

import os
import sys

import pyarrow.dataset as pads
import pytest
import torch
from trainhelpers import make_trial

from workers.checkpoint import load_torch
from workers.store.layout import model_uri
from workers.train import run_trial, tune_trainable

pytestmark = pytest.mark.slow


def crash_once_after_epoch_1(config: dict) -> None:
    """The real trainable; on its first start the process 'dies' right after the epoch-1 report."""
    import ray.tune as tune

    marker = config["crash_marker"]
    if not os.path.exists(marker):
        real_report = tune.report

        def report(metrics, checkpoint=None):
            real_report(metrics, checkpoint=checkpoint)
            if metrics["epoch"] == 1:
                open(marker, "w").close()
                raise RuntimeError("injected crash after the epoch-1 checkpoint")

        tune.report = report
        try:
            tune_trainable(config)
        finally:
            tune.report = real_report
    else:
        tune_trainable(config)


def test_tune_retry_resumes_exactly(tmp_path) -> None:
    import ray
    from ray import cloudpickle, tune

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import test modules
    trial = make_trial([0, 5], epochs=3, checkpoints=[0, 1, 3], trace_every=7, metrics=["polarized"])
    study_uri = str(tmp_path / "store" / "tq")
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(crash_once_after_epoch_1, {"cpu": 1}),
            param_space={"trial": trial.to_dict(), "study": "tq", "study_uri": study_uri,
                         "crash_marker": str(tmp_path / "crashed")},
            tune_config=tune.TuneConfig(num_samples=1, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), name="t", verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=1)),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    assert not results.errors
    assert (tmp_path / "crashed").exists()
    last = results[0].metrics
    assert last["epoch"] == 3 and last["restarts_done"] == 2 and last["diverged"] == 0
    ref = run_trial(trial, study="ref", study_uri=str(tmp_path / "ref"), cpus=1, gpus=0)
    for rk in trial.run_keys:
        assert all(torch.equal(load_torch(model_uri(study_uri, rk, 3))[k], v)
                   for k, v in load_torch(model_uri(str(tmp_path / "ref"), rk, 3)).items())
    rows = pads.dataset(f"{study_uri}/checkpoints", format="parquet", partitioning="hive").to_table().to_pylist()
    attempts = {(r["seed"], r["epoch"]): r["attempt"] for r in rows}
    assert attempts == {(s, e): (1 if e == 3 else 0) for s in (0, 5) for e in (0, 1, 3)}
    ref_loss = {(r["seed"], r["epoch"]): r["loss"] for r in ref.checkpoint_rows}
    assert {(r["seed"], r["epoch"]): r["loss"] for r in rows} == ref_loss
