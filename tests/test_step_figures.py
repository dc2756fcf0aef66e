"""`submit --dry-run` uses the bench's per-step figures for a class of the same cost on the same device.

The bench (`bench/gpu_throughput.py`) records each case's s/step under its cost key; the estimate replaces a
class's calibration by that figure only when the key matches exactly (device, dataset, training-set size,
architecture, batch, optimiser, seeds per trial, precision). Checked on the CPU, where the device is named by
its thread count; on a GPU node the same key names the GPU model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from sweep_helpers import write_study

from sweep import step_figures
from sweep.cli import main
from sweep.estimate import estimate
from sweep.spec import load_study

ROOT = Path(__file__).resolve().parent.parent


def _run(trial, cpus: float, gpus: float):
    """The trial's built TrialRun on the device plan of those resources, as the dry-run builds it."""
    from workers.device import apply_device_plan, plan_device
    from workers.train import TrialRun

    plan = plan_device(cpus=cpus, gpus=gpus, precision=trial.precision)
    apply_device_plan(plan)
    return TrialRun(trial, study="t", study_uri=None, plan=plan)


def _study(tmp_path: Path):
    return load_study(write_study(tmp_path / "s.yaml", name="fig", storage=str(tmp_path / "res"), seeds=2,
                                  per_trial=2, models=("beta_vae",)))


def test_a_recorded_figure_of_the_same_cost_replaces_the_calibration(tmp_path: Path) -> None:
    study = _study(tmp_path)
    (trial,) = study.trials
    run = _run(trial, study.spec.resources.cpu, study.spec.resources.gpu)
    key = step_figures.cost_key(run)
    cfg = trial.config
    assert json.loads(key) == {"device": "cpu: 1 threads", "dataset": "synth_lin", "n_train": run.data.n,
                               "model": "beta_vae", "arch": json.loads(key)["arch"], "latent_dim": cfg.latent_dim,
                               "batch": 64, "optimizer": cfg.optimizer.name, "S": 2, "precision": "fp32"}
    path = tmp_path / "figures.json"
    step_figures.record(key, 0.125, 20, "bench", path)
    other = json.dumps({**json.loads(key), "device": "cuda: NVIDIA H200"}, sort_keys=True)
    step_figures.record(other, 0.001, 20, "bench", path)
    figures = step_figures.load(path)
    assert set(figures) == {key, other}

    est = estimate(study, steps=2, figures=figures)
    (c,) = est.classes
    # the recorded figure is reused, not measured again
    assert c.seconds_per_step == 0.125 and c.source.startswith("bench ") and c.calibrated is None
    steps_per_epoch = run.data.n // 64
    assert c.train_seconds == pytest.approx(trial.config.epochs * steps_per_epoch * 0.125)
    assert "125.0 ms/step from bench" in est.describe() and "(reused)" in est.describe()

    only_gpu = {other: figures[other]}  # the same cost measured on another device is not this device's cost
    (c,) = estimate(study, steps=2, figures=only_gpu).classes
    assert c.source == "measured now" and c.calibrated == c.seconds_per_step != 0.001


def test_the_cost_key_of_a_trial_is_that_of_its_built_run(tmp_path: Path) -> None:
    from workers.device import plan_device

    study = _study(tmp_path)
    (trial,) = study.trials
    run = _run(trial, 1, 0)
    assert step_figures.trial_cost_key(trial, plan_device(cpus=1, gpus=0), run.data.n) == step_figures.cost_key(run)


def test_a_dry_run_measures_each_step_shape_once_and_the_next_one_reuses_it(tmp_path: Path, capsys,
                                                                             monkeypatch) -> None:
    figures = tmp_path / "cache" / "step_figures.json"
    monkeypatch.setenv("ORTHOSWEEP_CACHE", str(figures.parent))
    spec = {"study": "shapes", "storage": str(tmp_path / "res"),
            "grid": {"dataset": ["synth_lin"], "model": ["beta_vae", "beta_tcvae", "dip_vae_i", "factorvae"],
                     "seeds": 2},
            "overrides": {"synth_lin": {"n": 256}}, "train": {"epochs": 1, "seeds_per_trial": 2, "batch_size": 32},
            "eval": {"metrics": ["dto"], "n_eval": 64}, "resources": {"cpu": 1}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["submit", str(path), "--dry-run"]) == 0
    first = capsys.readouterr().out
    # β-VAE, β-TCVAE and DIP-VAE-I step through the same tensors: one shape; FactorVAE's step is its own
    assert "(2 of 2 step shapes measured now" in first, first
    assert "synth_lin/beta_vae, beta_tcvae, dip_vae_i (" in first and "synth_lin/factorvae (" in first
    assert first.count("ms/step measured now") == 2 and first.count("evaluation measured now") == 2
    # two model steps; one step data and one evaluation (one dataset, batch, block and posterior for all four)
    assert len(step_figures.load(figures)) == 4

    assert main(["submit", str(path), "--dry-run"]) == 0
    second = capsys.readouterr().out
    assert "(0 of 2 step shapes measured now" in second, second
    assert second.count("ms/step from dry-run") == 2 and "evaluation from dry-run" in second

    assert main(["submit", str(path), "--dry-run", "--no-calibrate"]) == 0
    plan_only = capsys.readouterr().out
    assert "restarts: 8 total" in plan_only and "estimate" not in plan_only


def test_a_damaged_figures_file_is_refused_by_name(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "figures.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="figures.json"):
        step_figures.load(bad)
    study_file = write_study(tmp_path / "s.yaml", name="fig", storage=str(tmp_path / "res"), seeds=1, per_trial=1)
    assert main(["submit", str(study_file), "--dry-run", "--step-figures", str(bad)]) == 2
    assert "--step-figures" in capsys.readouterr().err
    assert main(["submit", str(study_file), "--dry-run", "--step-figures", str(tmp_path / "none.json")]) == 2
    assert "is not a file" in capsys.readouterr().err
    assert main(["submit", str(study_file), "--step-figures", str(bad)]) == 2
    assert "only by --dry-run" in capsys.readouterr().err


def test_the_bench_records_figures_that_a_dry_run_of_the_same_trial_uses(tmp_path: Path) -> None:
    """bench --small times the paper MLP on a 256-image dSprites subset with S = 1 on one thread; a study of
    that very trial (cpu: 1, max_train: 256, one seed per trial) finds the figure in its dry-run."""
    figures = tmp_path / "figures.json"
    env = {**os.environ, "PYTHONPATH": "."}
    proc = subprocess.run([sys.executable, "bench/gpu_throughput.py", "--small", "--cases", "mlp_dsprites",
                           "--seeds", "1", "--figures", str(figures), "--json", str(tmp_path / "b.json")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    bench = json.loads((tmp_path / "b.json").read_text())
    (recorded,) = step_figures.load(figures).values()
    assert recorded["s_per_step"] == bench["cases"][0]["s_per_step"]
    spec = {"study": "dsprites_fig", "storage": str(tmp_path / "res"),
            "grid": {"dataset": ["dsprites"], "model": ["beta_vae"], "seeds": 1},
            "train": {"max_train": 256, "seeds_per_trial": 1},
            "eval": {"metrics": ["dto"], "n_eval": 64}, "resources": {"cpu": 1}}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(spec))
    res = subprocess.run([sys.executable, "-m", "sweep.cli", "submit", str(tmp_path / "d.yaml"), "--dry-run",
                          "--step-figures", str(figures)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    line = next(ln for ln in res.stdout.splitlines() if "dsprites/beta_vae (" in ln)
    assert f"{recorded['s_per_step'] * 1e3:.1f} ms/step from bench" in line, res.stdout[-3000:]


def test_trials_whose_dataset_files_are_absent_are_left_out_of_the_estimate_and_counted(tmp_path: Path) -> None:
    path = write_study(tmp_path / "s.yaml", name="absent", storage=str(tmp_path / "res"), seeds=2, per_trial=2,
                       models=("beta_vae",))
    data = yaml.safe_load(path.read_text())
    data["grid"]["dataset"] = ["synth_lin", "cars3d"]
    data.setdefault("overrides", {})["cars3d"] = {"path": str(tmp_path / "cars"), "max_train": 64}
    path.write_text(yaml.safe_dump(data))
    study = load_study(path, planned=True)
    assert study.absent_files == (str(tmp_path / "cars"),)
    est = estimate(study, steps=2)
    assert est.absent == sum(t.config.dataset == "cars3d" for t in study.trials) > 0
    assert [c.key[0] for c in est.classes] == ["synth_lin"]
    assert f"not estimated: {est.absent} trials whose dataset files are not on this machine" in est.describe()


def test_datasets_of_one_tensor_shape_share_one_model_step_and_each_times_its_own_data(tmp_path: Path) -> None:
    # the noisy variant of synth_lin steps through the same tensors as the clean one: its model step is the
    # clean one's timing, said to be made on synth_lin, while its data (the noise added per batch) is its own
    spec = {"study": "shared", "storage": str(tmp_path / "res"),
            "grid": {"dataset": ["synth_lin"], "model": ["beta_vae"], "seeds": 2},
            "overrides": {"synth_lin": {"n": 256, "noise": [None, 0.1]}},
            "train": {"epochs": 1, "seeds_per_trial": 2, "batch_size": 32},
            "eval": {"metrics": ["dto"], "n_eval": 64}, "resources": {"cpu": 1}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    figures = tmp_path / "figures.json"
    est = estimate(load_study(path), steps=2, record_to=figures)
    assert (est.step_shapes, est.step_shapes_measured) == (1, 1)
    kinds = [json.loads(k)["what"] for k in step_figures.load(figures)]
    assert sorted(kinds) == ["eval", "eval", "model step", "step data", "step data"]
    for c in est.classes:
        assert "model step" in c.step_parts and "on synth_lin" in c.step_parts


def test_a_paired_objective_is_timed_on_its_pairs(tmp_path: Path) -> None:
    from sweep.estimate import time_model_step, time_step_data
    from workers.device import plan_device

    study = load_study(write_study(tmp_path / "s.yaml", name="pairs", storage=str(tmp_path / "res"), seeds=2,
                                   per_trial=2, models=("ada_gvae", "pcl")))
    for trial in study.trials:
        run = _run(trial, 1, 0)
        seen: list[tuple[bool, bool]] = []

        def spy(*args, _terms=run.vae.terms, _seen=seen, **kw):
            _seen.append((kw.get("x_pair") is not None, kw.get("pair_perm") is not None))
            return _terms(*args, **kw)

        run.vae.terms = spy
        time_model_step(run, 3, warmup=1)
        negatives = trial.config.model == "pcl"  # PCL's shuffled negatives; Ada-GVAE has none
        assert seen == [(True, negatives)] * 4, (trial.config.model, seen)  # the warm-up and every timed step
        sec, n = time_step_data(trial, plan_device(cpus=1, gpus=0), run.dataset, 3)
        assert sec > 0 and n == 3


def test_an_evaluation_larger_than_the_probe_is_timed_on_a_subsample_of_every_size() -> None:
    from sweep.estimate import eval_probe
    from workers.trial import EvalSettings

    full = EvalSettings(("dto", "dci"), n_eval=10_000, n_train_supervised=10_000, n_test_supervised=5_000)
    probe, f = eval_probe(full, 200)
    assert f == 0.02 and (probe.n_eval, probe.n_train_supervised, probe.n_test_supervised) == (200, 200, 100)
    assert probe.metrics == full.metrics and probe.mode == full.mode
    small = EvalSettings(("dto",), n_eval=64, n_train_supervised=100, n_test_supervised=50)
    assert eval_probe(small, 200) == (small, 1.0)  # measured as it is
    tiny, _ = eval_probe(full, 10)
    assert min(tiny.n_eval, tiny.n_train_supervised, tiny.n_test_supervised) == 10  # never below validation's floor


def test_a_dry_run_of_a_finished_study_stops_its_timings_and_prints_no_estimate(tmp_path: Path, capsys,
                                                                                  monkeypatch) -> None:
    from testing.stub_trainable import stub_rows
    from workers.store.write import write_rows

    monkeypatch.setenv("ORTHOSWEEP_CACHE", str(tmp_path / "cache"))
    path = write_study(tmp_path / "s.yaml", name="done", storage=str(tmp_path / "res"), seeds=2, per_trial=2,
                       models=("beta_vae",))
    study = load_study(path)
    for t in study.trials:
        for epoch in t.checkpoints:
            write_rows(study.study_uri, "checkpoints", stub_rows(t, study.name, epoch, 0.0, 0))
    assert main(["submit", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "0 to train" in out and "estimate" not in out
    assert not any(t.name == "dry-run calibration" for t in threading.enumerate())  # joined, not left running
