"""The sweep driver on one real local Ray (started once for this module): the store decides completion, a
permanent failure is recorded and the sweep goes on, s3:// on a local moto server, resources no node offers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sweep_helpers import STUB, make_bucket, s3_uri, start_moto, view_counts, view_rows, write_study

from sweep.driver import run_sweep
from sweep.preflight import PreflightError
from sweep.spec import load_study
from testing.stub_trainable import stub_value

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

FAIL_SEED = 13  # the stub's trial holding this seed raises at every attempt


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    """moto S3 + one local Ray (2 CPUs). The stub's knobs are set before Ray starts so workers inherit them."""
    import ray

    proc, endpoint = start_moto()
    log = tmp_path_factory.mktemp("stublog") / "trained.txt"
    knobs = {"ORTHOSWEEP_STUB_FAIL": str(FAIL_SEED), "ORTHOSWEEP_STUB_LOG": str(log)}
    os.environ.update(knobs)
    # address="local": never attach to another Ray that happens to run on the machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        yield {"endpoint": endpoint, "log": log}
    finally:
        ray.shutdown()
        for k in knobs:
            os.environ.pop(k, None)
        proc.terminate()
        proc.wait(timeout=10)


def trained_lines(log: Path, run_keys: set[str]) -> list[str]:
    if not log.exists():
        return []
    return [ln for ln in log.read_text().splitlines() if ln.split()[0] in run_keys]


def test_store_decides_completion_with_the_real_trainable(env, tmp_path: Path) -> None:
    study = load_study(write_study(tmp_path / "s.yaml", name="real", storage=str(tmp_path / "res"), seeds=2,
                                   epochs=1))
    first = run_sweep(study, progress_every=1.0)
    assert (first.total, first.done, first.failed, first.trained) == (4, 4, 0, 4)
    raw, dedup, distinct = view_counts(study.study_uri)
    assert dedup == distinct == 4 * 2  # one row per (restart, checkpoint epoch 0 and 1)
    assert raw == dedup
    again = run_sweep(study)  # everything is stored: nothing is trained, nothing is written
    assert again.trained == 0 and again.done == 4
    assert view_counts(study.study_uri)[0] == raw
    assert (tmp_path / "res" / "real" / "study.yaml").exists()


def test_permanent_failure_is_recorded_and_the_sweep_goes_on(env, tmp_path: Path) -> None:
    from sweep.status import study_status

    study = load_study(write_study(tmp_path / "s.yaml", name="fails", storage=str(tmp_path / "res"),
                                   seeds=[11, 12, FAIL_SEED, 14], models=("ae",)))
    out = run_sweep(study, trainable=STUB)
    assert (out.done, out.failed) == (2, 2)
    rows = view_rows(study.study_uri, "seed, epoch, status, error")
    failed = [r for r in rows if r[2] == "failed"]
    assert sorted(r[0] for r in failed) == [FAIL_SEED, 14]
    assert all(r[1] == 2 and "stub failure injected" in r[3] for r in failed)
    assert sorted({r[0] for r in rows if r[2] == "ok" and r[1] == 2}) == [11, 12]
    text = study_status(study)
    assert "fails" in text and "failed restarts: 2" in text
    ok_keys = {r.run_key for r in study.restarts if r.seed in (11, 12)}
    before = len(trained_lines(env["log"], ok_keys))
    again = run_sweep(study, trainable=STUB, resume=True)  # retries the failed block only
    assert (again.done, again.failed) == (2, 2)
    assert len(trained_lines(env["log"], ok_keys)) == before  # the finished restarts were not retrained
    _, dedup, distinct = view_counts(study.study_uri)
    assert dedup == distinct == 2 * 3 + 2 * 1 + 2  # ok: 3 epochs each; failed block: epoch 0 + failed row


def test_s3_storage_on_moto_and_compaction(env, tmp_path: Path) -> None:
    from workers.store.compact import compact_study, count_files

    make_bucket(env["endpoint"], "sweeps")
    storage = s3_uri(env["endpoint"], "sweeps", "team")
    study = load_study(write_study(tmp_path / "s.yaml", name="ons3", storage=storage, seeds=4))
    out = run_sweep(study, trainable=STUB)
    assert (out.done, out.failed) == (8, 0)
    rows = view_rows(study.study_uri)
    assert len(rows) == 8 * 3
    assert all(r[3] == pytest.approx(stub_value(r[0], r[1], 1)) for r in rows)  # values known by construction
    files = count_files(study.study_uri)["checkpoints"]
    assert files > 2
    result = compact_study(study.study_uri)
    assert count_files(study.study_uri)["checkpoints"] == 2  # one per (dataset, model) partition
    assert result.files_before >= files
    assert view_rows(study.study_uri) == rows
    assert run_sweep(study, trainable=STUB).trained == 0  # the store on s3 decides completion too


def test_unwritable_s3_storage_fails_fast(env, tmp_path: Path) -> None:
    study = load_study(write_study(tmp_path / "s.yaml", name="nobucket",
                                   storage=s3_uri(env["endpoint"], "no-such-bucket", "x")))
    t = time.time()
    with pytest.raises(PreflightError, match="cannot be written"):
        run_sweep(study, trainable=STUB)
    assert time.time() - t < 30


def test_resources_no_node_offers_fail_fast_and_write_nothing(env, tmp_path: Path) -> None:
    study = load_study(write_study(tmp_path / "s.yaml", name="gpu", storage=str(tmp_path / "res"),
                                   resources={"gpu": 0.25}))
    t = time.time()
    with pytest.raises(PreflightError, match=r"gpu=0.25.*no node"):
        run_sweep(study, trainable=STUB)
    assert time.time() - t < 30
    assert not (tmp_path / "res").exists()
