"""Inline vs asynchronous evaluation, side by side: one study with the full metric set, run both ways.

    .venv/bin/python bench/eval_overlap.py [--seeds 8] [--per-trial 4] [--epochs 40] [--n 10000]

Each mode runs `orthosweep submit` on the same study (same restarts: run keys do not depend on eval
settings) into its own folder, in its own process (one in-process local Ray each), one trial at a time
(`max_concurrent_trials: 1`, 1 CPU per trial). Inline, the trial computes every metric at each checkpoint
before training on; async, it computes the device-side ones (dto, c_ima, polarized, unsupervised) and the
evaluation stage the rest on 1-CPU Ray tasks while training continues. Everything printed is derived from
the Parquet store and the submit's wall time:

- sweep wall time (submit start to exit: training, evaluation, Ray start-up);
- training: the trials' wall time minus their metric time (sum over trials of the final row's
  `wall_seconds` minus the `metrics_seconds` of their checkpoints);
- blocked: the time trials spent on metrics (`metrics_seconds`), as a share of trial time;
- evaluation: CPU-seconds of metric work (inline `metrics_seconds` + the evaluation stage's
  `wall_seconds`), and its throughput in checkpoints per CPU-hour.
The targets (issue 14): async trials blocked <= 5% of trial time; with enough CPUs the sweep's wall time
within 10% of max(training, evaluation) instead of their sum. On a machine with C cores, one trial
training leaves C - 1 for evaluation tasks.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from machine import describe  # bench/machine.py: the shared machine line

ROOT = Path(__file__).resolve().parent.parent
ALL_METRICS = ["dto", "c_ima", "polarized", "ds", "mig", "mig_sup", "dci", "sap", "factorvae", "betavae",
               "modularity", "irs", "unsupervised", "downstream_logreg", "downstream_gbt", "udr"]


def study_file(workdir: Path, mode: str, args: argparse.Namespace) -> Path:
    path = workdir / f"{mode}.yaml"
    path.write_text(yaml.safe_dump({
        "study": f"overlap-{mode}", "storage": str(workdir / "results"),
        "grid": {"dataset": ["synth_nonlin"], "model": ["beta_vae"], "seeds": args.seeds},
        "overrides": {"synth_nonlin": {"n": args.n}},
        "train": {"epochs": args.epochs, "checkpoints": list(range(0, args.epochs + 1, max(1, args.epochs // 2))),
                  "seeds_per_trial": args.per_trial, "batch_size": 64},
        "eval": {"metrics": ALL_METRICS, "mode": mode, "n_eval": args.n_eval,
                 "n_train_supervised": args.n_supervised, "n_test_supervised": args.n_supervised // 2},
        "resources": {"cpu": 1, "max_concurrent_trials": 1, "max_failures": 0},
    }))
    return path


def measure(study_uri: str) -> dict[str, float]:
    from workers.store.views import connect

    con = connect(study_uri)
    trial_s = con.execute("SELECT sum(w) FROM (SELECT trial_id, max(wall_seconds) AS w FROM trained "
                          "GROUP BY trial_id)").fetchone()[0]  # wall_seconds: a trial's cumulative time
    # inline metric time is per seed; a trial evaluates its seeds one after the other, so they add up
    blocked, n_ck = con.execute("SELECT sum(metrics_seconds), count(*) FROM trained WHERE status = 'ok'").fetchone()
    stage = con.execute("SELECT coalesce(sum(s), 0) FROM (SELECT max(wall_seconds) AS s FROM evaluations_raw "
                        "WHERE metric = 'udr' GROUP BY config_key, epoch UNION ALL SELECT sum(wall_seconds) "
                        "FROM evaluations_raw WHERE metric <> 'udr')").fetchone()[0]
    return {"trial_s": float(trial_s or 0), "blocked_s": float(blocked or 0),
            "eval_cpu_s": float(blocked or 0) + float(stage), "checkpoints": int(n_ck)}


def run_mode(mode: str, workdir: Path, args: argparse.Namespace) -> dict[str, float]:
    path = study_file(workdir, mode, args)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    t0 = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).parent / "orthosweep"), "submit", str(path)], env=env,
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{mode} submit failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    m = measure(str(workdir / "results" / f"overlap-{mode}"))
    m["wall_s"] = wall
    m["train_s"] = m["trial_s"] - m["blocked_s"]
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--per-trial", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--n", type=int, default=10000, help="synth_nonlin points")
    ap.add_argument("--n-eval", type=int, default=1000)
    ap.add_argument("--n-supervised", type=int, default=1000, help="supervised training points (test: half)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    print(describe())
    print(f"command: python bench/eval_overlap.py --seeds {args.seeds} --per-trial {args.per_trial} "
          f"--epochs {args.epochs} --n {args.n} --n-eval {args.n_eval} --n-supervised {args.n_supervised}")
    print(f"study: synth_nonlin (n={args.n}) beta_vae, {args.seeds} restarts in blocks of {args.per_trial}, "
          f"{args.epochs} epochs; metrics: {', '.join(ALL_METRICS)}")
    with tempfile.TemporaryDirectory() as tmp:
        res = {mode: run_mode(mode, Path(tmp), args) for mode in ("inline", "async")}
    hdr = f"{'mode':<8}{'sweep wall s':>13}{'training s':>12}{'eval CPU-s':>12}{'max(tr,ev)':>12}{'sum':>9}" \
          f"{'blocked s':>11}{'blocked %':>11}{'ckpt/CPU-h':>12}"
    print(hdr)
    for mode, m in res.items():
        blocked_pct = 100 * m["blocked_s"] / m["trial_s"] if m["trial_s"] else float("nan")
        per_cpu_h = m["checkpoints"] / (m["eval_cpu_s"] / 3600) if m["eval_cpu_s"] else float("nan")
        print(f"{mode:<8}{m['wall_s']:>13.1f}{m['train_s']:>12.1f}{m['eval_cpu_s']:>12.1f}"
              f"{max(m['train_s'], m['eval_cpu_s']):>12.1f}{m['train_s'] + m['eval_cpu_s']:>9.1f}"
              f"{m['blocked_s']:>11.1f}{blocked_pct:>10.1f}%{per_cpu_h:>12.0f}")
    a, i = res["async"], res["inline"]
    print(f"async / inline sweep wall time: {a['wall_s'] / i['wall_s']:.2f}; async wall / max(training, "
          f"evaluation): {a['wall_s'] / max(a['train_s'], a['eval_cpu_s']):.2f} (Ray start-up included); "
          f"cores: {os.cpu_count()} (1 trains, {max(0, (os.cpu_count() or 1) - 1)} evaluate)")


if __name__ == "__main__":
    main()
