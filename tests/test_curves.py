"""Live training curves: the trace reaches the store while a trial trains, TensorBoard event files per seed,
and the train.loggers setting (spec, preflight, Tune callbacks)."""

from __future__ import annotations

import dataclasses
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from trainhelpers import make_trial

from workers.device import plan_device
from workers.store.views import connect
from workers.train import TrialRun, run_trial


def _count(study: Path, sql: str) -> int:
    return connect(str(study)).execute(sql).fetchone()[0]


def test_trace_is_in_the_store_before_the_next_checkpoint(tmp_path: Path) -> None:
    study = tmp_path / "s"
    trial = make_trial([0, 1], epochs=2, checkpoints=[0, 2], n=640, trace_every=2)  # 8 steps per epoch
    run = TrialRun(trial, study="s", study_uri=str(study), plan=plan_device(cpus=1, gpus=0, precision="fp32"))
    run.trace_flush_seconds = 0.0  # write at every trace row
    study.mkdir()
    (study / "study.yaml").write_text("study: s\n")  # what `submit` writes before any trial starts
    run.train_epoch()  # no checkpoint yet: only the trace can be in the store
    assert _count(study, "SELECT count(*) FROM trace") == 2 * 4
    assert _count(study, "SELECT count(*) FROM checkpoints") == 0
    result = run.run()
    con = connect(str(study))
    stored = con.execute("SELECT seed, step, loss, kl, kl_per_dim, steps_per_second FROM trace "
                         "ORDER BY step, seed").fetchall()
    rows = sorted(result.trace_rows, key=lambda r: (r["step"], r["seed"]))
    assert [(r["seed"], r["step"], r["loss"]) for r in rows] == [(s, st, loss) for s, st, loss, *_ in stored]
    assert len(stored) == 2 * 8
    for _, step, _, kl, per_dim, rate in stored:
        assert len(per_dim) == 2 and np.isclose(sum(per_dim), kl, rtol=1e-4)  # diagonal Gaussian: KL adds up
        assert (rate is None) == (step == 2) and (rate is None or rate > 0)  # a rate from the second row on
    assert _count(study, "SELECT count(*) FROM checkpoints WHERE epoch = 2") == 2  # epoch 0 was trained past


def test_trace_files_are_batched_in_time(tmp_path: Path) -> None:
    """With the default interval a short trial writes its trace once per checkpoint, as before."""
    study = tmp_path / "s"
    run_trial(make_trial([0, 1], epochs=2, checkpoints=[0, 1, 2], n=640, trace_every=2), study="s",
              study_uri=str(study))
    files = list((study / "trace").rglob("*.parquet"))
    assert len(files) == 2  # epochs 1 and 2 (epoch 0 has no trace rows)
    assert _count(study, "SELECT count(*) FROM trace") == 2 * 8


def test_tensorboard_has_a_series_per_seed_and_their_mean(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    study = tmp_path / "s"
    trial = dataclasses.replace(make_trial([0, 3], epochs=1, n=640, trace_every=2, metrics=["dto", "polarized"]),
                                loggers=("tensorboard",))
    result = run_trial(trial, study="s", study_uri=str(study))
    folder = study / "tensorboard" / trial.trial_id
    runs = {}
    for name in ("seed_0", "seed_3", "mean"):
        ea = EventAccumulator(str(folder / name))
        ea.Reload()
        runs[name] = ea
    for seed in (0, 3):
        rows = sorted((r for r in result.trace_rows if r["seed"] == seed), key=lambda r: r["step"])
        loss = runs[f"seed_{seed}"].Scalars("train/loss")
        assert [e.step for e in loss] == [r["step"] for r in rows]
        np.testing.assert_allclose([e.value for e in loss], [r["loss"] for r in rows], rtol=1e-6)
        kl1 = [e.value for e in runs[f"seed_{seed}"].Scalars("train/kl_z1")]
        np.testing.assert_allclose(kl1, [r["kl_per_dim"][1] for r in rows], rtol=1e-6)
        dto = runs[f"seed_{seed}"].Scalars("checkpoint/dto")
        assert [e.step for e in dto] == [0, result.step]
    mean = [e.value for e in runs["mean"].Scalars("train/loss")]
    by_step: dict[int, list[float]] = {}
    for r in result.trace_rows:
        by_step.setdefault(r["step"], []).append(r["loss"])
    np.testing.assert_allclose(mean, [np.mean(v) for _, v in sorted(by_step.items())], rtol=1e-6)
    assert "train/steps_per_second" in runs["mean"].Tags()["scalars"]


def test_loggers_are_a_study_setting_that_leaves_the_run_keys_alone(tmp_path: Path) -> None:
    from sweep.errors import SpecError
    from sweep.loggers import study_loggers
    from sweep.spec import load_study
    from testing.tiny_study import write_study

    path = write_study(tmp_path / "s.yaml", name="t", storage=str(tmp_path))
    plain = load_study(path)
    logged = load_study(path, overrides={"train": {"loggers": ["wandb", "tensorboard", "tensorboard"]}})
    assert [r.run_key for r in logged.restarts] == [r.run_key for r in plain.restarts]
    assert {t.loggers for t in logged.trials} == {("tensorboard", "wandb")} and study_loggers(plain.trials) == []
    assert study_loggers(logged.trials) == ["tensorboard", "wandb"]
    with pytest.raises(SpecError, match="tensorboard"):
        load_study(path, overrides={"train": {"loggers": ["tensorbored"]}})


def test_preflight_names_the_extra_of_a_missing_logger(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    from sweep.loggers import check_loggers
    from sweep.preflight import PreflightError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(PreflightError, match=r"pip install 'orthosweep\[wandb\]'"):
        check_loggers(["wandb"], str(tmp_path))
    check_loggers([], str(tmp_path))


def test_mlflow_logs_to_a_file_store_in_the_study(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The callback Ray Tune gets (mlflow itself is an optional extra: a stand-in module is enough here)."""
    from sweep.loggers import tune_callbacks

    monkeypatch.setitem(sys.modules, "mlflow", types.ModuleType("mlflow"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tune_callbacks(["tensorboard"], str(tmp_path / "s"), "s") == []
    (cb,) = tune_callbacks(["mlflow"], str(tmp_path / "s"), "s")
    assert cb.tracking_uri == f"file://{tmp_path}/s/mlruns" and cb.experiment_name == "s"


def test_logger_flag_reaches_submit_and_resume() -> None:
    from sweep.cli import build_parser

    args = build_parser().parse_args(["submit", "x.yaml", "--logger", "tensorboard", "--logger", "mlflow"])
    assert args.logger == ["tensorboard", "mlflow"]
    assert build_parser().parse_args(["resume", "d", "--logger", "wandb"]).logger == ["wandb"]
    assert build_parser().parse_args(["submit", "x.yaml"]).logger is None


def _planted_trace(study: Path) -> None:
    """Two seeds of one group: seed a ends with latent 1 largest, seed b with latent 0; KL and loss known."""
    from testing.synthetic_store import checkpoint_row
    from workers.store.write import write_rows

    rows = []
    for rk, seed, kls in (("a", 0, [[0.1, 2.0, 0.5], [0.05, 2.5, 0.7]]), ("b", 1, [[1.0, 0.1, 0.2], [1.5, 0.0, 0.1]])):
        for i, kl in enumerate(kls):
            rows.append({"study": "planted", "run_key": rk, "config_key": "cfg", "dataset": "synth_lin",
                         "model": "beta_vae", "seed": seed, "step": 10 * (i + 1), "epoch": float(i + 1),
                         "loss": 10.0 * (seed + 1) / (i + 1), "recon": 1.0, "kl": sum(kl), "kl_per_dim": kl,
                         "steps_per_second": 100.0})
    write_rows(str(study), "trace", rows)
    write_rows(str(study), "checkpoints", [checkpoint_row(rk, 2, seed=s) for rk, s in (("a", 0), ("b", 1))])


def test_training_curve_frames_from_the_trace(tmp_path: Path) -> None:
    from analysis import plots as P
    from analysis.figures import all_figures
    from analysis.frames import trace_kl_ranks, trace_quantiles
    from analysis.groups import attach_groups, configurations

    study = tmp_path / "planted"
    _planted_trace(study)
    con = connect(str(study))
    q = trace_quantiles(con)
    assert q["step"].tolist() == [10, 20] and q["n"].tolist() == [2, 2] and set(q["beta"]) == {1e-3}
    np.testing.assert_allclose(q["loss_median"], [15.0, 7.5])  # (10 + 20) / 2, (5 + 10) / 2
    np.testing.assert_allclose(q["loss_q25"], [12.5, 6.25])
    r = trace_kl_ranks(con).set_index(["step", "latent_rank"])["median"]
    # final ranks: a = (z1, z2, z0), b = (z0, z2, z1); medians over the two seeds per rank
    np.testing.assert_allclose([r[10, 1], r[10, 2], r[10, 3]], [(2.0 + 1.0) / 2, (0.5 + 0.2) / 2, (0.1 + 0.1) / 2])
    np.testing.assert_allclose([r[20, 1], r[20, 3]], [(2.5 + 1.5) / 2, (0.05 + 0.0) / 2])
    configs = configurations(con)  # curves are grouped by configuration, labelled as every figure
    P.training_curves(attach_groups(q, configs))  # drawn without an error (all_figures would draw a message)
    P.kl_per_latent_curves(attach_groups(trace_kl_ranks(con), configs))
    figs = all_figures(con, str(study))
    assert figs["training_curves"][:8] == b"\x89PNG\r\n\x1a\n" and len(figs["training_kl_per_latent"]) > 10_000


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_running_submit_shows_its_trace_and_tensorboard_curves(tmp_path: Path) -> None:
    """While `orthosweep submit --logger tensorboard` runs, the trace count in the store grows and TensorBoard's
    own reader finds a loss series per seed (the sweep is stopped once that is seen)."""
    import os
    import signal
    import subprocess
    import time

    import yaml
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from testing.tiny_study import write_study

    path = write_study(tmp_path / "s.yaml", name="live", storage=str(tmp_path / "res"), seeds=2, per_trial=2,
                       epochs=2000, models=("beta_vae",), n=1024)
    spec = yaml.safe_load(path.read_text())
    spec["train"].update(checkpoints=[0, 2000], trace_every=20)  # no checkpoint to flush the trace meanwhile
    path.write_text(yaml.safe_dump(spec))
    study = tmp_path / "res" / "live"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    env["ORTHOSWEEP_TRACE_FLUSH_SECONDS"] = "0.5"
    with open(tmp_path / "submit.out", "w") as out:
        driver = subprocess.Popen([sys.executable, "-m", "sweep.cli", "submit", str(path), "--logger", "tensorboard"],
                                  env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                  cwd=Path(__file__).resolve().parent.parent)
    seen: list[tuple[int, dict[str, int]]] = []
    try:
        deadline = time.time() + 300
        while time.time() < deadline and driver.poll() is None:
            time.sleep(1.0)
            if not (study / "trace").exists():
                continue
            n = connect(str(study)).execute("SELECT count(*) FROM trace").fetchone()[0]
            points = {}
            for d in sorted((study / "tensorboard").glob("*/seed_*")):
                ea = EventAccumulator(str(d))
                ea.Reload()
                points[d.name] = len(ea.Scalars("train/loss")) if "train/loss" in ea.Tags()["scalars"] else 0
            seen.append((n, points))
            counts = [c for c, _ in seen if c]
            if len(counts) >= 2 and counts[0] < n and len(points) == 2 and min(points.values()) > 0:
                break
        running = driver.poll() is None
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
        driver.wait(timeout=30)
    assert running, f"the sweep ended before its curves were seen: {seen}\n" + (tmp_path / "submit.out").read_text()
    counts = [n for n, _ in seen if n]
    assert len(counts) >= 2 and counts[-1] > counts[0], seen
    assert sorted(seen[-1][1]) == ["seed_0", "seed_1"] and min(seen[-1][1].values()) > 0, seen
    assert connect(str(study)).execute("SELECT count(*) FROM checkpoints WHERE epoch = 2000").fetchone()[0] == 0
