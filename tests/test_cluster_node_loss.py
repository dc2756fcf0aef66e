"""Node loss: a multi-node Ray on one machine (`ray.cluster_utils.Cluster`); a worker node is killed while its
trials run. Tune retries them from their last checkpoint on the other nodes, the sweep completes, and the
deduplicated `checkpoints` view holds exactly one row per (run_key, epoch) for every restart, with the values an
undisturbed run stores (the stub trainable's values are a known function of (run_key, epoch))."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from sweep_helpers import STUB, view_counts, view_rows, write_study

from sweep.driver import run_sweep
from sweep.spec import load_study
from sweep.store import completed_run_keys, read_rows
from sweep.stub_trainable import stub_value

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(600)]


def test_worker_node_killed_mid_sweep(tmp_path: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster

    knobs = {"ORTHOSWEEP_STUB_SLEEP": "0.5", "ORTHOSWEEP_STUB_FAIL": "", "ORTHOSWEEP_STUB_LOG": ""}
    saved = {k: os.environ.get(k) for k in knobs}
    os.environ.update(knobs)  # inherited by the node processes started below
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        doomed = cluster.add_node(num_cpus=1)
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, log_to_driver=False)
        study = load_study(write_study(tmp_path / "s.yaml", name="nodeloss", storage=str(tmp_path / "res"),
                                       seeds=6, per_trial=1, epochs=3, models=("ae",),
                                       resources={"max_failures": 3}))
        killed = threading.Event()

        def kill_a_worker() -> None:
            deadline = time.time() + 300
            while time.time() < deadline:  # once the first restart is stored, both nodes are mid-trial
                if completed_run_keys(study.study_uri):
                    cluster.remove_node(doomed, allow_graceful=False)  # the other node finishes the sweep
                    killed.set()
                    return
                time.sleep(0.2)

        killer = threading.Thread(target=kill_a_worker, daemon=True)
        killer.start()
        outcome = run_sweep(study, trainable=STUB)
        killer.join(timeout=60)
    finally:
        ray.shutdown()
        cluster.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert killed.is_set()
    assert (outcome.done, outcome.failed) == (6, 0)
    raw, dedup, distinct = view_counts(study.study_uri)
    assert dedup == distinct == 6 * 4
    attempts = read_rows(study.study_uri, ["attempt"]).column("attempt").to_pylist()
    assert max(attempts) >= 1 or raw > dedup  # a trial on the killed node was retried from its checkpoint
    rows = view_rows(study.study_uri)
    assert all(r[2] == "ok" and r[3] == pytest.approx(stub_value(r[0], r[1], 1)) for r in rows)
