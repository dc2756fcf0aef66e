"""Submitting a sweep to a remote Ray cluster as a Ray job (Jobs API), and following it to its end.

The job ships a working directory holding the normalised study file and this checkout's packages
(`py_modules`: sweep, workers, analysis — the cluster runs the code that was validated here). Its
entrypoint is `python -m sweep.cli submit study.yaml --address auto` (the packages come with the job, so
no console script has to be on the head's PATH; its `python` must be the environment Ray runs in): the
driver runs on the head and, if the job is resubmitted, the store decides what is left to train.
`follow_job` prints the job's log as it grows until the job ends, like `ray job submit`; Ctrl-C detaches.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from sweep.spec import Study

PACKAGES = ("sweep", "workers", "analysis")
AGENT_WAIT_SECONDS = 180  # measured: > 60 s for a fresh head on a 2-core machine under load
POLL_SECONDS = 2.0
TAIL_LINES = 20


def job_entrypoint(max_concurrent: int | None, trainable: str | None) -> str:
    cmd = ["python", "-m", "sweep.cli", "submit", "study.yaml", "--address", "auto"]
    if max_concurrent:
        cmd += ["--max-concurrent", str(max_concurrent)]
    if trainable:
        cmd += ["--trainable", trainable]
    return shlex.join(cmd)


def submit_job(study: Study, address: str, *, max_concurrent: int | None = None,
               trainable: str | None = None) -> str:
    """Submit the study as a Ray job at `address` (http://HEAD:8265); returns the submission id."""
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="orthosweep-job-") as tmp:
        (Path(tmp) / "study.yaml").write_text(yaml.safe_dump(study.normalized, sort_keys=False))
        client = job_client(address)
        deadline = time.monotonic() + AGENT_WAIT_SECONDS
        while True:
            try:
                return client.submit_job(
                    entrypoint=job_entrypoint(max_concurrent, trainable),
                    runtime_env={"working_dir": tmp, "py_modules": [str(root / p) for p in PACKAGES]},
                    metadata={"orthosweep_study": study.name, "study_uri": study.study_uri},
                )
            except RuntimeError as e:
                # a head that just started answers HTTP before its job agent is up; that answer is transient
                if "No available agent" not in str(e) or time.monotonic() > deadline:
                    raise
                print(f"the head's job agent is not up yet; retrying for up to {AGENT_WAIT_SECONDS} s", flush=True)
                time.sleep(2)


@dataclass
class JobEnd:
    status: str  # SUCCEEDED, FAILED or STOPPED
    message: str  # Ray's word on the job (e.g. the entrypoint's exit code)
    tail: list[str]  # the last lines of its log

    @property
    def ok(self) -> bool:
        return self.status == "SUCCEEDED"


def follow_job(client: Any, job_id: str, *, out: TextIO | None = None, poll: float = POLL_SECONDS) -> JobEnd:
    """Print the job's log as it grows until the job ends; returns how it ended. `client`: a Ray
    `JobSubmissionClient` (get_job_status, get_job_logs, get_job_info)."""
    out = out or sys.stdout
    shown = 0
    while True:
        status = client.get_job_status(job_id)
        status = str(getattr(status, "value", status))  # a JobStatus enum from Ray
        logs = client.get_job_logs(job_id) or ""
        if len(logs) > shown:
            out.write(logs[shown:])
            out.flush()
            shown = len(logs)
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(poll)
    info = client.get_job_info(job_id)
    return JobEnd(status, str(getattr(info, "message", "") or ""), logs.rstrip("\n").splitlines()[-TAIL_LINES:])


def job_client(address: str) -> Any:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address)
