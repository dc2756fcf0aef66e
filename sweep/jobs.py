"""Submitting a sweep to a remote Ray cluster as a Ray job (Jobs API), so the laptop can disconnect.

The job ships a working directory holding the normalised study file and this checkout's packages
(`py_modules`: sweep, workers, analysis — the cluster runs the code that was validated here). Its
entrypoint is `orthosweep submit study.yaml --address auto`: the driver runs on the head and, if the job
is resubmitted, the store decides what is left to train.
"""

from __future__ import annotations

import shlex
import tempfile
import time
from pathlib import Path

import yaml

from sweep.spec import Study

PACKAGES = ("sweep", "workers", "analysis")
AGENT_WAIT_SECONDS = 180  # measured: > 60 s for a fresh head on a 2-core machine under load


def job_entrypoint(max_concurrent: int | None, trainable: str | None) -> str:
    cmd = ["orthosweep", "submit", "study.yaml", "--address", "auto"]
    if max_concurrent:
        cmd += ["--max-concurrent", str(max_concurrent)]
    if trainable:
        cmd += ["--trainable", trainable]
    return shlex.join(cmd)


def submit_job(study: Study, address: str, *, max_concurrent: int | None = None,
               trainable: str | None = None) -> str:
    """Submit the study as a Ray job at `address` (http://HEAD:8265); returns the submission id."""
    from ray.job_submission import JobSubmissionClient

    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="orthosweep-job-") as tmp:
        (Path(tmp) / "study.yaml").write_text(yaml.safe_dump(study.normalized, sort_keys=False))
        client = JobSubmissionClient(address)
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
