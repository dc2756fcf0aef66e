"""Scheduling overhead of the sweep service: N restarts of a near-zero-cost trainable through the whole path.

    .venv/bin/python bench/sweep_overhead.py [--restarts 2000] [--blocks 16 1]

Whole path = study spec -> plan (store read) -> Ray Tune (one trial per seed block, reuse_actors) -> the
trainable contract (`testing.stub_trainable`: Tune checkpoint + one Parquet file per checkpoint epoch through
`workers.store.write`) -> the store decides completion -> `compact`. The stub does no training, so the sweep's wall
time per restart *is* the overhead. Each block size runs in its own process (one in-process local Ray each) so
the driver's peak RSS is measured per configuration; the ratio between block sizes is printed side by side.
Targets (issue 6): <= 50 ms per restart with blocks of 16; driver <= 1 GB; <= 1 file per partition after compact.
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


def one(restarts: int, block: int, workdir: Path) -> dict:
    """Run one configuration in this process; returns its measurements."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from sweep.driver import run_sweep
    from sweep.spec import load_study
    from workers.store.compact import compact_study, count_files

    path = workdir / f"bench-{block}.yaml"
    path.write_text(yaml.safe_dump({
        "study": f"overhead-{block}", "storage": str(workdir / "results"),
        "grid": {"dataset": ["synth_lin"], "model": ["ae"], "seeds": restarts},
        "overrides": {"synth_lin": {"n": 256}},
        "train": {"epochs": 1, "checkpoints": [1], "seeds_per_trial": block},
        "eval": {"metrics": ["dto"], "n_eval": 64},
        "resources": {"cpu": 1, "max_failures": 0},
    }))
    study = load_study(path)
    import ray

    t0 = time.perf_counter()
    ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    t_init = time.perf_counter() - t0
    with open(os.devnull, "w") as quiet:
        t0 = time.perf_counter()
        outcome = run_sweep(study, trainable="testing.stub_trainable:tune_trainable", out=quiet, progress_every=30)
        t_sweep = time.perf_counter() - t0
    ray.shutdown()
    files = count_files(study.study_uri)["checkpoints"]
    t0 = time.perf_counter()
    c = compact_study(study.study_uri)
    t_compact = time.perf_counter() - t0
    return {"block": block, "restarts": restarts, "trials": len(study.trials), "done": outcome.done,
            "ray_init_s": t_init, "sweep_s": t_sweep, "files": files, "files_after_compact": c.files_after,
            "partitions": c.partitions, "compact_s": t_compact,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--restarts", type=int, default=2000)
    ap.add_argument("--blocks", type=int, nargs="+", default=[16, 1])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.restarts, args.one, Path(args.workdir))))
        return
    print(describe(), flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="orthosweep-bench-") as tmp:
        for block in args.blocks:
            proc = subprocess.run([sys.executable, __file__, "--restarts", str(args.restarts), "--one", str(block),
                                   "--workdir", tmp], capture_output=True, text=True, cwd=ROOT)
            if proc.returncode:
                sys.exit(f"block {block} failed:\n{proc.stderr[-3000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
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
