"""The public Python API (`orthosweep`): open, restarts, submit, load_restart, and the docs example."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from trainhelpers import make_trial

import orthosweep
from workers.models.vae import BatchedVAE
from workers.train import run_trial

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A two-seed beta-VAE trial trained for one epoch through the real trainer (no Ray), and its store."""
    study_dir = tmp_path_factory.mktemp("api") / "api"
    trial = make_trial([0, 1], epochs=1, n=512, trace_every=2, metrics=["dto", "polarized"])
    result = run_trial(trial, study="api", study_uri=str(study_dir))
    return study_dir, trial, result


def test_import_loads_no_heavy_module() -> None:
    code = ("import sys, orthosweep\nprint(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'sklearn', 'numba', 'ray', 'duckdb', 'pandas', 'matplotlib', 'analysis', 'sweep'}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]", res.stdout


def test_open_fetches_like_a_cursor_and_converts_like_a_relation(trained) -> None:
    study_dir, trial, _ = trained
    con = orthosweep.open(study_dir)
    assert con.sql("SELECT count(*) FROM runs").fetchone() == (2,)
    res = con.sql("SELECT run_key FROM checkpoints ORDER BY run_key, epoch")
    assert res.fetchone() == (sorted(trial.run_keys)[0],)  # a cursor: later fetches go on
    assert len(res.fetchall()) == 3
    assert sorted(con.sql("SELECT DISTINCT run_key FROM runs").df()["run_key"]) == sorted(trial.run_keys)
    assert con.sql("SELECT epoch FROM checkpoints").arrow().num_rows == 4
    assert con.sql("SELECT count(*) FROM trace WHERE run_key = ?", [trial.run_keys[0]]).fetchone()[0] > 0
    assert {"checkpoints", "runs", "groups", "trace"} <= set(con.tables())
    with pytest.raises(Exception, match="(?i)read-only|read only|permission|external|disabled"):
        con.sql("CREATE TABLE x AS SELECT 1").fetchall()


def test_restarts_is_one_row_per_restart(trained) -> None:
    study_dir, trial, _ = trained
    runs = orthosweep.restarts(study_dir)
    assert sorted(runs["run_key"]) == sorted(trial.run_keys)
    assert set(runs["epoch"]) == {1}
    assert set(orthosweep.restarts(study_dir, epoch=0)["epoch"]) == {0}


def test_load_restart_is_the_trained_seed(trained) -> None:
    """Its decoder and encoder are those of the trainer's final parameters for that seed, bit for bit."""
    study_dir, trial, result = trained
    vae = BatchedVAE(trial.config, (3,))
    for s, rk in enumerate(trial.run_keys):
        r = orthosweep.load_restart(study_dir, rk[:7])  # an unambiguous prefix is enough
        assert (r.run_key, r.epoch, r.latent_dim) == (rk, 1, 2)
        ref = vae.seed_view(result.state["flat"], s)
        x = r.heldout(16)
        assert x.shape == (16, 3)
        z = r.encode(x)
        with torch.no_grad():
            assert np.array_equal(z, ref.encode(torch.from_numpy(x))[0].numpy())
            assert np.array_equal(r.decode(z), ref.decode(torch.from_numpy(z)).numpy())
        mu, post = r.posterior(x)
        assert np.array_equal(mu, z) and post["logvar"].shape == (16, 2)
        assert r.row["status"] == "ok" and r.config["model"] == "beta_vae"
    assert orthosweep.load_restart(study_dir, trial.run_keys[0], epoch=0).epoch == 0


def test_load_restart_names_what_exists(trained) -> None:
    study_dir, trial, _ = trained
    with pytest.raises(KeyError, match="no restart 'nope'"):
        orthosweep.load_restart(study_dir, "nope")
    with pytest.raises(KeyError, match=r"recorded epochs: \[0, 1\]"):
        orthosweep.load_restart(study_dir, trial.run_keys[0], epoch=7)
    os.rename(study_dir / "models" / trial.run_keys[1] / "e0.pt", study_dir / "e0.pt.aside")
    try:
        with pytest.raises(FileNotFoundError, match=r"saved epochs: \[1\]"):
            orthosweep.load_restart(study_dir, trial.run_keys[1], epoch=0)
    finally:
        os.rename(study_dir / "e0.pt.aside", study_dir / "models" / trial.run_keys[1] / "e0.pt")


def test_submit_merges_overrides_into_files_mappings_and_studies(tmp_path: Path) -> None:
    from orthosweep.api import _study
    from sweep.errors import SpecError
    from testing.tiny_study import write_study

    path = write_study(tmp_path / "s.yaml", name="tiny", storage=str(tmp_path / "a"), epochs=2)
    s = _study(path, str(tmp_path / "b"), {"train": {"epochs": 1, "checkpoints": [0, 1]}, "grid": {"seeds": 2}})
    assert s.study_uri == str(tmp_path / "b" / "tiny")
    assert {r.config.epochs for r in s.restarts} == {1} and len(s.restarts) == 4  # 2 models x 2 seeds
    again = _study(s, None, {"grid": {"model": ["ae"]}})
    assert {r.config.model for r in again.restarts} == {"ae"} and again.spec.train.epochs == 1
    mapping = {"study": "m", "storage": str(tmp_path), "grid": {"dataset": ["synth_lin"], "model": ["ae"], "seeds": 1}}
    assert len(_study(mapping, None, {"grid": {"seeds": 3}}).restarts) == 3
    with pytest.raises(SpecError, match="epochs"):
        _study(path, None, {"train": {"epochs": -1}})


@pytest.mark.slow
def test_docs_example_runs_from_submission_to_a_figure(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(ROOT / "docs" / "api_example.py"), str(tmp_path)], capture_output=True,
                         text=True, cwd=ROOT, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "8/8 restarts done, 0 failed" in res.stdout, res.stdout
    assert (tmp_path / "api_example.png").stat().st_size > 10_000
    con = orthosweep.open(tmp_path / "api_example")
    assert con.sql("SELECT count(*) FROM runs WHERE status = 'ok' AND epoch = 3").fetchone() == (8,)
