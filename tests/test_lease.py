"""One live driver per study: the lease refuses a second driver (named), `--force` only over a stale heartbeat,
a dead driver's lease is taken over on its host, and `status` tells running from dead; local and s3://."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_helpers import STUB, make_bucket, s3_uri, start_moto, write_study

from sweep.cli import main
from sweep.lease import STALE_AFTER_S, LeaseHeld, acquire, read_lease
from sweep.status import status_text
from workers.store import layout

HOLD = "import sys, time; from sweep.lease import held\nwith held(sys.argv[1], command='submit'):\n    time.sleep(120)"


@pytest.fixture
def holder(tmp_path: Path):
    """Another process that holds the lease of `tmp_path/store/s` (as a running driver would)."""
    study_dir = tmp_path / "store" / "s"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent), *sys.path])}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(study_dir)], env=env)
    deadline = time.time() + 30
    while read_lease(str(study_dir)) is None:
        assert time.time() < deadline and proc.poll() is None, "the holder did not take the lease"
        time.sleep(0.1)
    yield proc, study_dir
    proc.kill()
    proc.wait()


def test_a_second_driver_is_refused_with_the_first_named(holder, tmp_path: Path, capsys) -> None:
    proc, study_dir = holder
    path = write_study(tmp_path / "s.yaml", name="s", storage=str(tmp_path / "store"))
    for force in ([], ["--force"]):
        assert main(["submit", str(path), "--trainable", STUB, *force]) == 2
        err = capsys.readouterr().err
        assert f"host {socket.gethostname()} (pid {proc.pid}, `orthosweep submit`), heartbeat" in err, err
        assert ("accepted only once its heartbeat is older" in err) == bool(force)
    assert main(["resume", str(study_dir), "--trainable", STUB]) == 2
    assert not (study_dir / "study.yaml").exists()  # nothing written by the refused drivers
    text = status_text("s", str(study_dir), {}, now=time.time())
    assert f"driver: running on {socket.gethostname()} (pid {proc.pid})" in text, text


def test_a_dead_drivers_lease_is_taken_over_on_its_host_and_status_says_dead(holder, capsys) -> None:
    proc, study_dir = holder
    proc.kill()
    proc.wait()
    text = status_text("s", str(study_dir), {}, now=time.time())
    assert "driver: dead" in text and "that pid no longer runs on this host" in text, text
    lease = acquire(str(study_dir), command="resume", out=sys.stdout)
    try:
        assert "that pid no longer runs on this host" in capsys.readouterr().out
        assert read_lease(str(study_dir))["pid"] == os.getpid()
    finally:
        lease.release()
    assert read_lease(str(study_dir)) is None


def _lease_of_another_host(study_dir: str, age: float) -> None:
    layout.write_text(layout.join_uri(study_dir, layout.LEASE_FILE), json.dumps(
        {"host": "elsewhere", "pid": 1, "token": "t", "command": "submit", "started": 0,
         "heartbeat": time.time() - age}))


def test_force_is_accepted_only_over_a_stale_heartbeat(tmp_path: Path, capsys) -> None:
    study_dir = str(tmp_path / "s")
    _lease_of_another_host(study_dir, age=5)
    with pytest.raises(LeaseHeld, match="live driver on host elsewhere .*accepted only once"):
        acquire(study_dir, command="submit", force=True)
    _lease_of_another_host(study_dir, age=STALE_AFTER_S + 60)
    assert "not running (no heartbeat)" in status_text("s", study_dir, {}, now=time.time())
    with pytest.raises(LeaseHeld, match="may be dead .*rerun with --force"):
        acquire(study_dir, command="submit")
    lease = acquire(study_dir, command="submit", force=True, out=sys.stdout)
    assert "its heartbeat is stale (--force)" in capsys.readouterr().out
    lease.start_heartbeat(every=0.2)
    time.sleep(0.6)
    assert time.time() - read_lease(study_dir)["heartbeat"] < 1  # kept alive
    lease.release()
    assert read_lease(study_dir) is None


def test_the_lease_on_s3(tmp_path: Path) -> None:
    proc, endpoint = start_moto()
    try:
        make_bucket(endpoint, "leases")
        study_dir = s3_uri(endpoint, "leases", "store/s")
        lease = acquire(study_dir, command="submit")
        with pytest.raises(LeaseHeld, match=f"live driver on host {socket.gethostname()}"):
            acquire(study_dir, command="resume")
        lease.release()
        acquire(study_dir, command="resume").release()
        assert read_lease(study_dir) is None
    finally:
        proc.terminate()
        proc.wait(timeout=10)
