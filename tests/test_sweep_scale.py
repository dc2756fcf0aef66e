"""The sweep at 10^4 stub restarts on one local Ray: every restart is stored exactly once, and the progress
line, the driver's state and `status` count all of them; what Tune keeps of the experiment holds each trial's
own contract, never the plan."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from sweep_helpers import STUB, view_counts, write_study

from sweep.driver import latest_experiment, run_sweep
from sweep.spec import load_study
from sweep.status import study_status
from workers.store.layout import read_driver_state

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

N = 10_000


def test_ten_thousand_restarts_are_stored_once_and_counted(tmp_path: Path) -> None:
    import ray

    study = load_study(write_study(tmp_path / "s.yaml", name="scale", storage=str(tmp_path / "res"), seeds=N,
                                   per_trial=16, epochs=1, models=("ae",)))
    assert len(study.trials) == 625
    out = io.StringIO()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        outcome = run_sweep(study, trainable=STUB, out=out, progress_every=5.0)
    finally:
        ray.shutdown()
    assert (outcome.total, outcome.done, outcome.failed, outcome.trained) == (N, N, 0, N)
    raw, dedup, distinct = view_counts(study.study_uri)
    assert raw == dedup == distinct == 2 * N  # checkpoints at epochs 0 and 1, each written once

    lines = [ln for ln in out.getvalue().splitlines() if "restarts done" in ln]
    assert lines[-1].startswith(f"[orthosweep] {N}/{N} restarts done, 0 failed, 0 trials running")
    state = read_driver_state(study.study_uri)
    assert state is not None and (state["done"], state["total"], state["failed"], state["finished"]) == (N, N, 0, True)
    table = study_status(study)
    assert [ln.split() for ln in table.splitlines() if ln.startswith("all")] == [["all", str(N), str(N), "0", "0", "0"]]

    # Tune's pickled experiment holds no plan: a restored driver must not read, nor Tune rewrite, O(trials) of it
    experiment = tmp_path / "res" / "scale" / "tune" / str(latest_experiment(study.study_uri))
    assert os.path.getsize(experiment / "tuner.pkl") < 64 * 1024
    with open(experiment / "tuner.pkl", "rb") as f:
        assert study.trials[-1].run_keys[-1].encode() not in f.read()
