"""Exact resume from a checkpoint; what a trial writes (rows, trace, state dicts) through the real sink."""

from __future__ import annotations

import pyarrow.dataset as pads
import pytest
import torch
from trainhelpers import make_trial

from workers.checkpoint import load_torch
from workers.models.vae import BatchedVAE
from workers.store.layout import model_uri
from workers.train import STATE_FILE, run_trial


@pytest.mark.parametrize("case", [
    dict(model="beta_vae"),
    dict(model="factorvae", hparams={"gamma": 10.0}, n=100, batch_size=4),
    dict(model="beta_tcvae", hparams={"beta": 6.0}, optimizer="adagrad", lr=1e-2),
], ids=lambda c: c["model"])
def test_resume_after_a_checkpoint_ends_with_the_uninterrupted_parameters(case, tmp_path) -> None:
    trial = make_trial([0, 9] if case["model"] == "factorvae" else [0, 4, 9], epochs=3, checkpoints=[0, 1, 3],
                       trace_every=7, **case)
    full = run_trial(trial, study="t", study_uri=None, cpus=1, gpus=0)
    ckdir = tmp_path / "ck"
    first = run_trial(trial, study="t", study_uri=None, cpus=1, gpus=0, stop_after_epoch=1,
                      checkpoint_dir=str(ckdir))
    assert first.epoch == 1 and (ckdir / STATE_FILE).exists()
    resumed = run_trial(trial, study="t", study_uri=None, cpus=1, gpus=0, resume_from=str(ckdir))
    assert resumed.epoch == 3 and resumed.step == full.step
    for key in ("flat", "disc_flat"):
        if full.state[key] is not None:
            assert torch.equal(resumed.state[key], full.state[key]), key
    for k, v in full.state["opt"].items():
        assert torch.equal(resumed.state["opt"][k], v) if isinstance(v, torch.Tensor) else resumed.state["opt"][k] == v
    # the Δ_KL history continues too: the resumed run's trace and the first part make the full trace
    assert resumed.state["delta_kl"] == full.state["delta_kl"]
    S = len(trial.seeds)
    assert [r["epoch"] for r in resumed.checkpoint_rows] == [3] * S  # epoch 1 not re-emitted
    assert resumed.state["attempt"] == 1 and full.state["attempt"] == 0
    assert [r["loss"] for r in resumed.checkpoint_rows] == [r["loss"] for r in full.checkpoint_rows[-S:]]


def test_resume_refuses_another_trials_state(tmp_path) -> None:
    ck = tmp_path / "ck"
    run_trial(make_trial([0], epochs=1), study="t", study_uri=None, cpus=1, gpus=0, checkpoint_dir=str(ck))
    with pytest.raises(ValueError, match="not .*point resume_from"):
        run_trial(make_trial([1], epochs=1), study="t", study_uri=None, cpus=1, gpus=0, resume_from=str(ck))


def test_trial_writes_checkpoint_rows_trace_and_loadable_state_dicts(tmp_path) -> None:
    study_uri = str(tmp_path / "store" / "s1")
    trial = make_trial([0, 1], epochs=2, checkpoints=[0, 1, 2], trace_every=10,
                       metrics=["dto", "polarized"])
    res = run_trial(trial, study="s1", study_uri=study_uri, cpus=1, gpus=0)
    rows = pads.dataset(f"{study_uri}/checkpoints", format="parquet", partitioning="hive").to_table().to_pylist()
    assert sorted((r["seed"], r["epoch"]) for r in rows) == [(s, e) for s in (0, 1) for e in (0, 1, 2)]
    for r in rows:
        assert r["status"] == "ok" and r["run_key"] == trial.run_keys[r["seed"]] and r["study"] == "s1"
        assert r["loss"] is not None and r["recon"] is not None and r["kl"] is not None
        assert r["dto"] is not None and r["active_units_mu"] is not None
        assert r["trial_id"] == trial.trial_id and r["config_key"] == trial.config_key
        assert r["step"] == r["epoch"] * 25 and r["epochs"] == 2 and r["beta"] == 1e-3
    last = {r["seed"]: r for r in rows if r["epoch"] == 2}
    assert last[0]["polarized_fraction"] is not None  # from the trace's Δ_KL history
    trace = pads.dataset(f"{study_uri}/trace", format="parquet", partitioning="hive").to_table().to_pylist()
    assert sorted({t["step"] for t in trace}) == [10, 20, 30, 40, 50]
    assert all(t["delta_kl"] is not None and t["kl_active"] is not None for t in trace)
    # state dicts: weights_only-loadable, and they rebuild each seed exactly
    vae = BatchedVAE(trial.config, (3,))
    x = torch.randn(5, 3)
    for s, rk in enumerate(trial.run_keys):
        for e in (0, 1, 2):
            sd = load_torch(model_uri(study_uri, rk, e))
            assert all(isinstance(v, torch.Tensor) for v in sd.values())
        view = vae.load_seed(load_torch(model_uri(study_uri, rk, 2)))
        ref = vae.seed_view(res.state["flat"], s)
        assert torch.equal(view.encode(x)[0], ref.encode(x)[0])
