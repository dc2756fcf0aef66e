"""`orthosweep submit --address http://HEAD:8265` against a live Ray head with its dashboard (the Jobs API):
the study runs as a Ray job whose driver is on the head, followed to its end, the store fills exactly once, and
resubmitting the same study as a second job trains nothing (the store decides what is left); a job that fails
exits non-zero with its error."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sweep_helpers import VENV_BIN, free_port, view_counts, write_study

from sweep.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def dashboard():
    """A one-node Ray head (2 CPUs) whose dashboard serves the Jobs API on 127.0.0.1; yields its http address."""
    pytest.importorskip("aiohttp", reason="the Jobs API server needs ray[default] (in the test extras)")
    from ray.cluster_utils import Cluster
    from ray.job_submission import JobSubmissionClient

    saved_path = os.environ["PATH"]
    # the job's entrypoint (`python -m sweep.cli submit ...`) runs in a shell on the head: it must find this venv
    os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{saved_path}"
    port = free_port()
    # the job agent's HTTP port too: its default (52365) is taken by any other Ray with ray[default] on the
    # machine, and then the head never gets a job agent ("No available agent to submit job")
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "include_dashboard": True, "dashboard_host": "127.0.0.1", "dashboard_port": port,
        "dashboard_agent_listen_port": free_port()})
    address = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                JobSubmissionClient(address).list_jobs()
                break
            except Exception:  # the dashboard's HTTP server starts after the node reports ready
                if time.time() > deadline:
                    raise
                time.sleep(1)
        yield address
    finally:
        c.shutdown()
        os.environ["PATH"] = saved_path


def wait_for_jobs(address: str, timeout: float = 300) -> list:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    deadline = time.time() + timeout
    while time.time() < deadline:
        jobs = client.list_jobs()
        if jobs and all(j.status.is_terminal() for j in jobs):
            return jobs
        time.sleep(1)
    raise AssertionError(f"jobs still running after {timeout} s: {[(j.submission_id, j.status) for j in jobs]}")


def test_submit_as_a_ray_job_fills_the_store_once_and_a_resubmission_trains_nothing(
        dashboard: str, tmp_path: Path, capsys) -> None:
    from ray.job_submission import JobStatus, JobSubmissionClient

    study = write_study(tmp_path / "s.yaml", name="jobs", storage=str(tmp_path / "res"), seeds=4, per_trial=2,
                        epochs=2, models=("ae",))
    uri = str(tmp_path / "res" / "jobs")
    assert main(["submit", str(study), "--address", dashboard]) == 0  # follows the job to its end
    out = capsys.readouterr().out
    assert "as Ray job" in out and "4/4 restarts done" in out  # the job's log, printed as it grew
    [job] = wait_for_jobs(dashboard)
    logs = JobSubmissionClient(dashboard).get_job_logs(job.submission_id)
    assert job.status == JobStatus.SUCCEEDED, logs
    assert "4/4 restarts done" in logs
    assert view_counts(uri) == (4 * 3, 4 * 3, 4 * 3)

    assert main(["submit", str(study), "--address", dashboard, "--no-wait"]) == 0
    jobs = wait_for_jobs(dashboard)
    assert len(jobs) == 2 and all(j.status == JobStatus.SUCCEEDED for j in jobs)
    second = next(j for j in jobs if j.submission_id != job.submission_id)
    assert "4 already in the store, 0 to train" in JobSubmissionClient(dashboard).get_job_logs(second.submission_id)
    assert view_counts(uri) == (4 * 3, 4 * 3, 4 * 3)


def test_a_job_that_fails_exits_non_zero_with_its_error(dashboard: str, tmp_path: Path, capsys) -> None:
    study = write_study(tmp_path / "s.yaml", name="broken", storage=str(tmp_path / "res"), seeds=2, per_trial=2,
                        epochs=1, models=("ae",))
    assert main(["submit", str(study), "--address", dashboard, "--trainable", "no_such_module:fn"]) == 1
    err = capsys.readouterr().err
    assert "failed: Job entrypoint command failed with exit code 1" in err, err
    assert "No module named 'no_such_module'" in err
