"""Scheduling overhead of the sweep service: N restarts of a near-zero-cost trainable through the whole path.

    .venv/bin/python bench/sweep_overhead.py [--restarts 2000] [--blocks 16 1]
    .venv/bin/python bench/sweep_overhead.py --curve      # 10^3, 10^4, 10^5 restarts; planning alone at 10^6

Whole path = study spec -> plan (store read) -> Ray Tune (one trial per seed block, reuse_actors) -> the
trainable contract (`testing.stub_trainable`: Tune checkpoint + one Parquet file per checkpoint epoch through
`workers.store.write`) -> the store decides completion -> `compact`. The stub does no training, so the sweep's wall
time per restart *is* the overhead. Each block size runs in its own process (one in-process local Ray each) so
the driver's peak RSS is measured per configuration; the ratio between block sizes is printed side by side.
Targets (issue 6): <= 50 ms per restart with blocks of 16; driver <= 1 GB; <= 1 file per partition after compact.

`--curve` is the growth curve: the same study at 10^3, 10^4 and 10^5 restarts (blocks of 16), each in its own
process, side by side in one run; the ratio of the overhead per restart and of the driver's peak RSS between
consecutive sizes, and the driver memory each further trial costs (the slope of peak RSS over trials: what Tune
keeps of every trial until the experiment ends, and the store reads at its end). Then the planning alone (spec
expansion and `plan_sweep`, no Ray) at 10^6 restarts: time and peak RSS. Targets: 10^5 within 1.2x the 10^4
overhead per restart, driver <= 1 GB, memory per further trial bounded (10^4 -> 10^5 within 1.2x 10^3 -> 10^4).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from machine import describe  # bench/machine.py: the shared machine line

ROOT = Path(__file__).resolve().parent.parent
CURVE = (1_000, 10_000, 100_000)  # restarts per study on the growth curve
PLAN_ONLY = 1_000_000  # restarts of the planning-only pass


def write_study(restarts: int, block: int, workdir: Path) -> Path:
    path = workdir / f"bench-{block}-{restarts}.yaml"
    path.write_text(yaml.safe_dump({
        "study": f"overhead-{block}-{restarts}", "storage": str(workdir / "results"),
        "grid": {"dataset": ["synth_lin"], "model": ["ae"], "seeds": restarts},
        "overrides": {"synth_lin": {"n": 256}},
        "train": {"epochs": 1, "checkpoints": [1], "seeds_per_trial": block},
        "eval": {"metrics": ["dto"], "n_eval": 64},
        "resources": {"cpu": 1, "max_failures": 0},
    }))
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """CPU seconds this process (the driver) has used: less sensitive than wall time to a shared machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def plan_only(restarts: int, block: int, workdir: Path) -> dict:
    """Validate and expand the study and plan it against an empty store, in this process (no Ray)."""
    from sweep.driver import plan_sweep
    from sweep.spec import load_study

    t0 = time.perf_counter()
    study = load_study(write_study(restarts, block, workdir))
    t_expand = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = plan_sweep(study)
    t_plan = time.perf_counter() - t0
    return {"restarts": plan.total, "trials": len(plan.trials), "expand_s": t_expand, "plan_s": t_plan,
            "peak_rss_mb": peak_rss_mb()}


def one(restarts: int, block: int, workdir: Path, compact: bool = True) -> dict:
    """Run one configuration in this process; returns its measurements."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from sweep.driver import run_sweep
    from sweep.spec import load_study
    from workers.store.compact import compact_study, count_files

    study = load_study(write_study(restarts, block, workdir))
    import ray

    t0 = time.perf_counter()
    ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    t_init = time.perf_counter() - t0
    with open(os.devnull, "w") as quiet:
        t0, c0 = time.perf_counter(), cpu_s()
        outcome = run_sweep(study, trainable="testing.stub_trainable:tune_trainable", out=quiet, progress_every=30)
        t_sweep, c_sweep = time.perf_counter() - t0, cpu_s() - c0
    ray.shutdown()
    r = {"block": block, "restarts": restarts, "trials": len(study.trials), "done": outcome.done,
         "ray_init_s": t_init, "sweep_s": t_sweep, "driver_cpu_s": c_sweep, "peak_rss_mb": peak_rss_mb()}
    if compact:
        files = count_files(study.study_uri)["checkpoints"]
        t0 = time.perf_counter()
        c = compact_study(study.study_uri)
        r |= {"files": files, "files_after_compact": c.files_after, "partitions": c.partitions,
              "compact_s": time.perf_counter() - t0}
    return r


def subprocess_json(args: list[str], what: str) -> dict:
    """Run this file with `args` in a fresh process (its own Ray, its own peak RSS); its last stdout line."""
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        sys.exit(f"{what} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def curve(block: int, workdir: Path) -> None:
    """The growth curve (module docstring): one line per size, the ratios, the per-trial memory, planning at
    10^6, the targets."""
    rows = []
    for n in CURVE:
        r = subprocess_json(["--restarts", str(n), "--one", str(block), "--workdir", str(workdir), "--no-compact"],
                            f"{n} restarts")
        r["ms"] = 1000 * r["sweep_s"] / n
        rows.append(r)
        print(f"{n:>7} restarts in {r['trials']:>5} trials (blocks of {block}), {r['done']} done: sweep "
              f"{r['sweep_s']:.1f} s (+ ray.init {r['ray_init_s']:.1f} s) -> {r['ms']:.2f} ms overhead per "
              f"restart (driver CPU {1000 * r['driver_cpu_s'] / n:.2f} ms); driver peak RSS {r['peak_rss_mb']:.0f} MB",
              flush=True)
    slopes = []
    for a, b in zip(rows, rows[1:], strict=False):
        slope = 1024 * (b["peak_rss_mb"] - a["peak_rss_mb"]) / (b["trials"] - a["trials"])
        slopes.append(slope)
        cpu = (b["driver_cpu_s"] / b["restarts"]) / (a["driver_cpu_s"] / a["restarts"])
        print(f"ratio {b['restarts']} / {a['restarts']} restarts: overhead per restart {b['ms'] / a['ms']:.2f}x "
              f"(driver CPU per restart {cpu:.2f}x), "
              f"driver peak RSS {b['peak_rss_mb'] / a['peak_rss_mb']:.2f}x; driver memory per further trial "
              f"{slope:.1f} KB", flush=True)
    p = subprocess_json(["--restarts", str(PLAN_ONLY), "--plan-only", str(block), "--workdir", str(workdir)],
                        "planning-only pass")
    print(f"planning only (no Ray) at {p['restarts']} restarts ({p['trials']} trials): spec validation and "
          f"expansion {p['expand_s']:.1f} s, plan_sweep {p['plan_s']:.2f} s; peak RSS {p['peak_rss_mb']:.0f} MB",
          flush=True)
    flat = rows[-1]["ms"] <= 1.2 * rows[-2]["ms"]
    print(f"targets: {CURVE[-1]} restarts within 1.2x the {CURVE[-2]} overhead per restart: "
          f"{'met' if flat else 'NOT met'} ({rows[-1]['ms'] / rows[-2]['ms']:.2f}x); driver <= 1 GB: "
          f"{'met' if all(r['peak_rss_mb'] <= 1024 for r in rows) else 'NOT met'}; driver memory per further "
          f"trial bounded by {slopes[-1]:.0f} KB, within 1.2x the smaller sizes' {slopes[0]:.0f} KB: "
          f"{'met' if slopes[-1] <= 1.2 * slopes[0] else 'NOT met'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--restarts", type=int, default=2000)
    ap.add_argument("--blocks", type=int, nargs="+", default=[16, 1])
    ap.add_argument("--curve", action="store_true", help="growth curve: 10^3, 10^4, 10^5 restarts; planning at 10^6")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--plan-only", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--no-compact", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.restarts, args.one, Path(args.workdir), compact=not args.no_compact)))
        return
    if args.plan_only:
        print(json.dumps(plan_only(args.restarts, args.plan_only, Path(args.workdir))))
        return
    print(describe(), flush=True)
    if args.curve:
        with tempfile.TemporaryDirectory(prefix="orthosweep-bench-") as tmp:
            curve(args.blocks[0], Path(tmp))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="orthosweep-bench-") as tmp:
        for block in args.blocks:
            r = subprocess_json(["--restarts", str(args.restarts), "--one", str(block), "--workdir", tmp],
                                f"block {block}")
            results.append(r)
            print(f"seed blocks of {block:>3}: {r['restarts']} restarts in {r['trials']} trials, "
                  f"{r['done']} done; sweep {r['sweep_s']:.1f} s (+ ray.init {r['ray_init_s']:.1f} s) -> "
                  f"{1000 * r['sweep_s'] / r['restarts']:.1f} ms overhead per restart; driver peak RSS "
                  f"{r['peak_rss_mb']:.0f} MB; Parquet files {r['files']} -> {r['files_after_compact']} after "
                  f"compact ({r['partitions']} partitions, {r['compact_s']:.1f} s)", flush=True)
    if len(results) >= 2:
        a, b = results[0], results[1]
        print(f"ratio: overhead per restart, blocks of {b['block']} / blocks of {a['block']} = "
              f"{b['sweep_s'] / a['sweep_s']:.1f}x (same {a['restarts']} restarts, measured in this run)")
    ok = all(1000 * r["sweep_s"] / r["restarts"] <= 50 for r in results if r["block"] >= 16)
    print(f"targets: <= 50 ms/restart with blocks of 16: {'met' if ok else 'NOT met'}; driver <= 1 GB: "
          f"{'met' if all(r['peak_rss_mb'] <= 1024 for r in results) else 'NOT met'}; <= 1 file per partition "
          f"after compact: {'met' if all(r['files_after_compact'] <= r['partitions'] for r in results) else 'NOT met'}")


if __name__ == "__main__":
    main()
