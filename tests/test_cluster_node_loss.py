"""Node loss: a multi-node Ray on one machine (`ray.cluster_utils.Cluster`, one per module); a worker node is
killed while its trials run. Tune retries them from their last checkpoint on the other node, the sweep
completes, and the deduplicated `checkpoints` view holds exactly one row per (run_key, epoch) for every restart,
with the values of an undisturbed run: known by construction for the stub trainable, and measured by an
undisturbed run of the same study for the real one."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from sweep_helpers import STUB, view_counts, view_rows, write_study

from sweep.driver import run_sweep
from sweep.spec import Study, load_study
from testing.stub_trainable import stub_value
from workers.store.views import connect

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(900)]

COMPARED = "run_key, epoch, status, loss, recon, kl, dto, mig"


@pytest.fixture(scope="module")
def cluster():
    """Head without CPUs (runs no trial) + worker nodes of 1 CPU each; the stub's knobs set before nodes start."""
    import ray
    from ray.cluster_utils import Cluster

    knobs = {"ORTHOSWEEP_STUB_SLEEP": "0.5", "ORTHOSWEEP_STUB_FAIL": "", "ORTHOSWEEP_STUB_LOG": ""}
    saved = {k: os.environ.get(k) for k in knobs}
    os.environ.update(knobs)
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        c.add_node(num_cpus=1)
        ray.init(address=c.address, log_to_driver=False)
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _both_nodes_mid_trial(study_uri: str, left: int) -> bool:
    """Two restarts are running with at least `left` checkpoints still to write: with one CPU per worker node,
    one of them is on each node, so whichever node is killed, its trial has work left for a retry to redo.
    (Waiting for any unfinished restart raced on an idle machine: the doomed node's trial could finish in the
    moment between the check and the kill, leaving the retry nothing to write.)"""
    try:
        t = connect(study_uri).sql("SELECT run_key, epoch, epochs FROM checkpoints_raw").to_arrow_table().to_pydict()
    except (OSError, ValueError):  # nothing written yet
        return False
    latest: dict[str, tuple[int, int]] = {}
    for key, epoch, epochs in zip(t["run_key"], t["epoch"], t["epochs"], strict=True):
        latest[key] = (max(epoch, latest.get(key, (-1, 0))[0]), epochs)
    return sum(epochs - epoch >= left for epoch, epochs in latest.values()) >= 2


def sweep_losing_a_node(cluster, study: Study, trainable: str, *, left: int) -> tuple:
    """Add a worker node, run the sweep, and kill that node while both worker nodes are mid-trial with `left`
    checkpoints to go. Returns the sweep's outcome."""
    doomed = cluster.add_node(num_cpus=1)  # in the main thread: Ray's node start-up installs signal handlers
    cluster.wait_for_nodes()  # the new node takes trials from the start, so both nodes are busy at once
    killed = threading.Event()

    def kill_worker() -> None:
        deadline = time.time() + 600
        while time.time() < deadline:
            if _both_nodes_mid_trial(study.study_uri, left):
                cluster.remove_node(doomed, allow_graceful=False)
                killed.set()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_worker, daemon=True)
    killer.start()
    outcome = run_sweep(study, trainable=trainable)
    killer.join(timeout=60)
    assert killed.is_set(), "the sweep finished before a node could be killed"
    return outcome


def retried(study_uri: str) -> bool:
    """Evidence that a trial ran again: a row written by a later attempt, or rows written twice."""
    raw, dedup, _ = view_counts(study_uri)
    max_attempt, = connect(study_uri).execute("SELECT max(attempt) FROM checkpoints_raw").fetchone()
    return max_attempt >= 1 or raw > dedup


def test_node_killed_mid_sweep_stub_values_known_by_construction(cluster, tmp_path: Path) -> None:
    study = load_study(write_study(tmp_path / "s.yaml", name="nodeloss", storage=str(tmp_path / "res"), seeds=6,
                                   per_trial=1, epochs=3, models=("ae",), resources={"max_failures": 3}))
    outcome = sweep_losing_a_node(cluster, study, STUB, left=2)
    assert (outcome.done, outcome.failed) == (6, 0)
    _, dedup, distinct = view_counts(study.study_uri)
    assert dedup == distinct == 6 * 4
    assert retried(study.study_uri)
    rows = view_rows(study.study_uri)
    assert all(r[2] == "ok" and r[3] == pytest.approx(stub_value(r[0], r[1], 1)) for r in rows)


def test_node_killed_mid_sweep_real_trainable_equals_undisturbed_run(cluster, tmp_path: Path) -> None:
    # 32,768 points = 512 steps per epoch (~0.2 s): four epochs left give the kill ~0.8 s to land mid-trial
    kwargs = dict(name="nodeloss_real", seeds=4, per_trial=1, epochs=8, models=("beta_vae",),
                  resources={"max_failures": 3}, n=32768)
    calm = load_study(write_study(tmp_path / "a.yaml", storage=str(tmp_path / "calm"), **kwargs))
    assert run_sweep(calm).done == 4
    hit = load_study(write_study(tmp_path / "b.yaml", storage=str(tmp_path / "hit"), **kwargs))
    outcome = sweep_losing_a_node(cluster, hit, "workers.train:tune_trainable", left=4)
    assert (outcome.done, outcome.failed) == (4, 0)
    _, dedup, distinct = view_counts(hit.study_uri)
    assert dedup == distinct == 4 * 9
    assert retried(hit.study_uri)
    expected, got = view_rows(calm.study_uri, COMPARED), view_rows(hit.study_uri, COMPARED)
    assert [r[:3] for r in got] == [r[:3] for r in expected]
    for g, e in zip(got, expected, strict=True):
        assert g[3:] == pytest.approx(e[3:], rel=1e-9, abs=1e-12, nan_ok=True), g[:2]
