"""A Jobs API submission is followed to its end: its log is printed as it grows, and a job that fails (or
whose entrypoint cannot start) exits non-zero with Ray's message and the log's last lines."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest
from sweep_helpers import write_study

from sweep import jobs
from sweep.cli import main


class FakeJobs:
    """The three JobSubmissionClient calls follow_job makes, replaying a job's life."""

    def __init__(self, statuses: list[str], logs: list[str], message: str):
        self.statuses, self.logs, self.message = statuses, logs, message
        self.submitted: list[dict] = []

    def submit_job(self, **kw) -> str:
        self.submitted.append(kw)
        return "raysubmit_1"

    def get_job_status(self, job_id: str) -> str:
        return self.statuses[0] if len(self.statuses) == 1 else self.statuses.pop(0)

    def get_job_logs(self, job_id: str) -> str:
        return self.logs[0] if len(self.logs) == 1 else self.logs.pop(0)

    def get_job_info(self, job_id: str) -> SimpleNamespace:
        return SimpleNamespace(message=self.message)


def test_follow_prints_the_log_once_as_it_grows_and_returns_the_end() -> None:
    client = FakeJobs(["PENDING", "RUNNING", "RUNNING", "SUCCEEDED"], ["", "a\n", "a\nb\n", "a\nb\nc\n"], "")
    out = io.StringIO()
    end = jobs.follow_job(client, "j", out=out, poll=0)
    assert out.getvalue() == "a\nb\nc\n" and end.ok and end.tail == ["a", "b", "c"]


@pytest.mark.parametrize("wait", [True, False])
def test_submit_follows_a_job_whose_entrypoint_cannot_start(wait: bool, tmp_path: Path, monkeypatch,
                                                            capsys) -> None:
    log = "Running entrypoint for job raysubmit_1: python -m sweep.cli submit study.yaml\n" \
          "/bin/sh: 1: python: not found\n"
    client = FakeJobs(["PENDING", "FAILED"], ["", log], "Job entrypoint command failed with exit code 127")
    monkeypatch.setattr(jobs, "job_client", lambda address: client)
    monkeypatch.setattr("sweep.preflight.check_address", lambda address, timeout=3.0: None)
    monkeypatch.setattr(jobs, "POLL_SECONDS", 0)
    study = write_study(tmp_path / "s.yaml", name="s", storage="s3://bucket/prefix")
    rc = main(["submit", str(study), "--address", "http://head:8265", *([] if wait else ["--no-wait"])])
    out, err = capsys.readouterr()
    assert "submitted s as Ray job raysubmit_1" in out
    assert client.submitted[0]["entrypoint"].startswith("python -m sweep.cli submit study.yaml")
    if not wait:
        assert rc == 0 and "not found" not in out + err
        return
    assert rc == 1
    assert "error: Ray job raysubmit_1 failed: Job entrypoint command failed with exit code 127" in err
    assert "    /bin/sh: 1: python: not found" in err
