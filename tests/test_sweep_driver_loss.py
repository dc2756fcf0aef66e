"""Driver loss: SIGKILL the `orthosweep submit` process mid-sweep, then `orthosweep resume` finishes the study.

Finished restarts are not trained again (the stub trainable logs every trained (restart, epoch)), the
deduplicated `checkpoints` view holds exactly one row per (run_key, epoch), and every value equals the one an
undisturbed run stores (the stub's values are a known function of (run_key, epoch)).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from sweep_helpers import STUB, VENV_BIN, view_counts, view_rows, write_study

from sweep.spec import load_study
from sweep.status import study_status
from testing.stub_trainable import stub_value
from workers.store.restarts import completed_run_keys

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_sigkill_driver_then_resume(tmp_path: Path) -> None:
    path = write_study(tmp_path / "s.yaml", name="killed", storage=str(tmp_path / "res"), seeds=6, per_trial=1,
                       epochs=3, models=("ae",), resources={"max_concurrent_trials": 2})
    study = load_study(path)
    log = tmp_path / "trained.txt"
    # RAY_AUTH_MODE deliberately unset: the CLI's default turns on token auth for the Ray it starts in-process.
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    env.update({"ORTHOSWEEP_STUB_SLEEP": "0.5", "ORTHOSWEEP_STUB_LOG": str(log)})
    cli = str(VENV_BIN / "orthosweep")
    with open(tmp_path / "submit.out", "w") as out:
        driver = subprocess.Popen([cli, "submit", str(path), "--trainable", STUB], env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and driver.poll() is None:
            if len(completed_run_keys(study.study_uri)) >= 2:
                break
            time.sleep(0.5)
        assert driver.poll() is None, "the sweep finished before it could be interrupted"
        live = study_status(study)  # readable while the sweep runs, from another process
        assert "driver: running on" in live and "synth_lin" in live
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
        driver.wait(timeout=30)
    done_before = completed_run_keys(study.study_uri)
    assert 2 <= len(done_before) < 6

    resumed = subprocess.run([cli, "resume", study.study_uri, "--trainable", STUB], env=env, capture_output=True,
                             text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "6/6 restarts done, 0 failed" in resumed.stdout

    trained = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert all(trained[rk] == 3 for rk in done_before)  # epochs 1..3 once each: never retrained
    assert set(trained) == {r.run_key for r in study.restarts}
    raw, dedup, distinct = view_counts(study.study_uri)
    assert dedup == distinct == 6 * 4  # exactly one row per (restart, checkpoint epoch 0..3)
    rows = view_rows(study.study_uri)
    assert all(r[2] == "ok" and r[3] == pytest.approx(stub_value(r[0], r[1], 1))
               and r[4] == pytest.approx(stub_value(r[0], r[1], 4)) for r in rows)
