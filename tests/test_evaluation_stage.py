"""The evaluation stage: stored checkpoints scored later, merged into the same `checkpoints` row.

A study trained with only `dto` and `mig` is scored with `orthosweep evaluate --metrics sap,dci,udr`: every ok row
gets the metrics, the view keeps one row per (run_key, epoch), a second run computes nothing, and the values
equal those an inline run of the same restarts writes (same weights, same metric seeds). With asynchronous
evaluation, a driver SIGKILLed after training but before the evaluation tasks ran leaves the metrics
missing; `resume` writes exactly those and trains nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from sweep_helpers import VENV_BIN, write_study

from sweep.spec import load_study
from workers.store.pending import pending_evaluations
from workers.store.views import connect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
CLI = str(VENV_BIN / "orthosweep")


def _env() -> dict[str, str]:
    # RAY_AUTH_MODE unset: the CLI's default turns on token auth for the Ray it starts in-process
    return {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}


def _run(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    done = subprocess.run([CLI, *args], env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _study(tmp_path: Path, name: str, metrics: list[str], **extra: object) -> Path:
    path = write_study(tmp_path / f"{name}.yaml", name=name, storage=str(tmp_path / "res"), seeds=3, per_trial=3,
                       epochs=2, models=("beta_vae",))
    spec = yaml.safe_load(path.read_text())
    spec["eval"] = {"metrics": metrics, "n_eval": 64, "n_train_supervised": 200, "n_test_supervised": 100,
                    **extra}
    path.write_text(yaml.safe_dump(spec))
    return path


def _one(con, sql: str):  # noqa: ANN001, ANN202
    return con.execute(sql).fetchone()[0]


def test_evaluate_scores_stored_checkpoints_once_and_as_inline(tmp_path: Path) -> None:
    later = load_study(_study(tmp_path, "later", ["dto", "mig"]))
    _run("submit", str(tmp_path / "later.yaml"))
    inline = load_study(_study(tmp_path, "inline", ["dto", "sap", "dci"]))
    _run("submit", str(tmp_path / "inline.yaml"))
    assert [r.run_key for r in later.restarts] == [r.run_key for r in inline.restarts]  # same restarts

    out = _run("evaluate", later.study_uri, "--metrics", "sap,dci,udr").stdout
    assert "9 stored checkpoints" in out and "3 configuration groups" in out
    con = connect(later.study_uri)
    n, distinct = con.execute("SELECT count(*), count(DISTINCT (run_key, epoch)) FROM checkpoints").fetchone()
    assert n == distinct == 9  # 3 restarts x epochs 0..2: still one row per (run_key, epoch)
    assert _one(con, "SELECT count(*) FROM checkpoints WHERE status = 'ok' AND (sap IS NULL OR "
                     "dci_disentanglement IS NULL OR udr_spearman IS NULL OR udr_lasso IS NULL)") == 0
    assert _one(con, "SELECT count(*) FROM checkpoints WHERE status = 'ok'") == 9
    assert _one(con, "SELECT count(*) FROM evaluations_raw") == 9 * 3  # sap, dci, udr per checkpoint
    assert _one(con, "SELECT count(*) FROM checkpoints WHERE list_sort(evaluated) = "
                     "['dci', 'dto', 'mig', 'sap', 'udr']") == 9
    stats = _run("stats", later.study_uri, "--epoch", "2").stdout
    assert "Rank correlation of UDR (Spearman variant) with MIG and with DtO" in stats

    # the same weights and metric seeds as inline evaluation: the same numbers
    ref = dict(((r, e), (s, d)) for r, e, s, d in connect(inline.study_uri).execute(
        "SELECT run_key, epoch, sap, dci_disentanglement FROM checkpoints").fetchall())
    got = dict(((r, e), (s, d)) for r, e, s, d in con.execute(
        "SELECT run_key, epoch, sap, dci_disentanglement FROM checkpoints").fetchall())
    assert got == ref

    again = _run("evaluate", later.study_uri, "--metrics", "sap,dci,udr").stdout
    assert "0 need checkpoint metrics, 0 configuration groups" in again
    assert _one(connect(later.study_uri), "SELECT count(*) FROM evaluations_raw") == 27  # nothing recomputed

    _run("evaluate", later.study_uri, "--metrics", "sap", "--epochs", "2", "--force")
    con = connect(later.study_uri)
    assert _one(con, "SELECT count(*) FROM evaluations_raw") == 30  # 3 restarts re-scored at epoch 2
    assert _one(con, "SELECT count(*) FROM checkpoints") == 9
    assert dict(((r, e), (s, d)) for r, e, s, d in con.execute(
        "SELECT run_key, epoch, sap, dci_disentanglement FROM checkpoints").fetchall()) == ref


def test_evaluate_refuses_a_folder_without_models(tmp_path: Path) -> None:
    from sweep_helpers import STUB

    path = write_study(tmp_path / "s.yaml", name="stubbed", storage=str(tmp_path / "res"), seeds=2, per_trial=2,
                       epochs=1, models=("ae",))
    _run("submit", str(path), "--trainable", STUB)  # the stub writes rows but no weights
    done = subprocess.run([CLI, "evaluate", str(tmp_path / "res" / "stubbed"), "--metrics", "sap"], env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "holds no stored models" in done.stderr
    bad = subprocess.run([CLI, "evaluate", str(tmp_path / "res" / "stubbed"), "--metrics", "sapp"], env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "'sapp'" in bad.stderr and "sap" in bad.stderr


def test_async_evaluation_after_driver_sigkill_is_finished_by_resume(tmp_path: Path) -> None:
    # The trial takes every CPU of the local Ray, so the evaluation tasks it hands off (one CPU each)
    # cannot start until it ends; the driver is killed as soon as the final checkpoint rows are written.
    path = _study(tmp_path, "asyncd", ["dto", "sap"], mode="async")
    spec = yaml.safe_load(path.read_text())
    spec["resources"]["cpu"] = os.cpu_count()
    path.write_text(yaml.safe_dump(spec))
    study = load_study(path)
    assert study.eval.mode == "async"
    with open(tmp_path / "submit.out", "w") as out:
        driver = subprocess.Popen([CLI, "submit", str(path)], env=_env(), stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.time() + 300
        final = 0
        while time.time() < deadline and driver.poll() is None:
            try:
                final = _one(connect(study.study_uri), "SELECT count(*) FROM trained WHERE epoch = 2")
            except Exception:  # noqa: BLE001 - the store may not exist yet
                final = 0
            if final == 3:
                break
            time.sleep(0.05)
        assert final == 3 and driver.poll() is None, (tmp_path / "submit.out").read_text()[-3000:]
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
        driver.wait(timeout=30)
    con = connect(study.study_uri)
    trained_rows = _one(con, "SELECT count(*) FROM checkpoints_raw")
    assert trained_rows == 9
    assert _one(con, "SELECT count(*) FROM checkpoints WHERE dto IS NULL") == 0  # device-side: in the trial
    missing = pending_evaluations(study.study_uri, ["sap"])
    assert len(missing.checkpoint_jobs) >= 3  # at least the final epoch's evaluations were never written

    out = _run("resume", study.study_uri).stdout
    assert "3/3 restarts done" in out
    con = connect(study.study_uri)
    assert _one(con, "SELECT count(*) FROM checkpoints_raw") == trained_rows  # nothing retrained
    assert _one(con, "SELECT count(*) FROM checkpoints WHERE sap IS NULL") == 0
    assert _one(con, "SELECT count(*) FROM checkpoints") == 9
    # exactly the missing evaluations were written: one sap row per checkpoint in all
    assert _one(con, "SELECT count(*) FROM evaluations_raw WHERE metric = 'sap'") == 9
    assert pending_evaluations(study.study_uri, ["dto", "sap"]).empty
