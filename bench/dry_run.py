"""How long `submit --dry-run` takes, and how close its shortcuts are to the full measurements they stand for.

    .venv/bin/python bench/dry_run.py [--study studies/locatello2019_grid.yaml] [--no-checks]

Prints, on this machine:
1. wall seconds and peak memory of `orthosweep submit STUDY --dry-run` as a fresh process: cold (an empty
   $ORTHOSWEEP_CACHE, every part timed), warm (the figures the cold run recorded reused) and `--no-calibrate`;
2. (unless --no-checks) the two shortcuts the estimate takes, each beside the full measurement, in one run:
   - one seed's evaluation scaled from EVAL_PROBE_POINTS points (`sweep.estimate.time_eval`) vs the same
     evaluation on all of its points, for the study's first trial;
   - the model step of every dataset of one observation shape timed on that very dataset (median of three
     interleaved rounds), beside the figure the estimate shares between them (the first one's), for the
     first trial's objective.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from machine import describe  # noqa: E402


def timed_cli(args: list[str], cache: str) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in GB, the estimate's total line) of one `orthosweep` run as a fresh process."""
    env = {**os.environ, "ORTHOSWEEP_CACHE": cache}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "sweep.cli", *args], cwd=ROOT, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(args)} exited {proc.returncode}:\n{err.read()[-3000:]}")
        total = next((ln.strip() for ln in out.read().splitlines() if ln.strip().startswith("total:")), "")
    return wall, usage.ru_maxrss / 1e6, total  # ru_maxrss: kB on Linux


def check_shortcuts(study_file: str) -> None:
    from sweep.driver import plan_sweep
    from sweep.estimate import EVAL_PROBE_POINTS, _built, _dataset, time_eval, time_model_step
    from sweep.spec import load_study
    from workers.device import plan_device

    study = load_study(study_file, planned=True)
    trials = [t for t in plan_sweep(study, done=set()).trials
              if not any(str(v) in study.absent_files for v in t.config.dataset_options.values())]
    res = study.spec.resources
    first = trials[0]
    plan = plan_device(cpus=res.cpu, gpus=res.gpu, precision=first.precision)
    run = _built(dataclasses.replace(first, trace_every=0), plan)
    model = run.vae.seed_view(run.params.data, 0)
    scaled, how = time_eval(model, run.device, first, run.dataset, points=EVAL_PROBE_POINTS)
    full, _ = time_eval(model, run.device, first, run.dataset, points=10**9)
    print(f"evaluation of one seed, {first.config.dataset}/{first.config.model} "
          f"({', '.join(first.eval.in_trial())}, n_eval {first.eval.n_eval:,}):")
    print(f"  scaled ({how}): {scaled:.2f} s   full: {full:.2f} s   scaled/full = {scaled / full:.3f}")

    by_shape: dict[tuple[int, ...], list] = {}
    seen = set()
    for t in trials:
        if t.config.model != first.config.model or t.config.dataset in seen:
            continue
        seen.add(t.config.dataset)
        by_shape.setdefault(tuple(_dataset(t).observation_shape), []).append(t)
    for shape, group in by_shape.items():
        if len(group) < 2:
            continue
        runs = [_built(dataclasses.replace(t, trace_every=0), plan_device(cpus=res.cpu, gpus=res.gpu,
                                                                          precision=t.precision)) for t in group]
        rounds: list[list[float]] = [[] for _ in runs]
        for _ in range(3):  # interleaved rounds, so that a load drift or a warming allocator hits every dataset
            for r, times in zip(runs, rounds, strict=True):
                times.append(time_model_step(r, 4, warmup=1)[0])
        figures = [(t.config.dataset, statistics.median(times)) for t, times in zip(group, rounds, strict=True)]
        del runs
        shared = figures[0][1]
        print(f"model step, {first.config.model}, observation {'x'.join(map(str, shape))} "
              f"(the estimate shares {figures[0][0]}'s {shared * 1e3:.1f} ms):")
        for name, sec in figures:
            print(f"  timed on {name}: {sec * 1e3:.1f} ms   shared/own = {shared / sec:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default="studies/locatello2019_grid.yaml")
    ap.add_argument("--no-checks", action="store_true", help="only the three dry-run timings")
    args = ap.parse_args()
    print(describe())
    print(f"date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}")
    flags = " --no-checks" if args.no_checks else ""
    print(f"command: .venv/bin/python bench/dry_run.py --study {args.study}{flags}")
    with tempfile.TemporaryDirectory() as cache:
        for label, extra in (("cold", []), ("warm", []), ("--no-calibrate", ["--no-calibrate"])):
            wall, peak, last = timed_cli(["submit", args.study, "--dry-run", *extra], cache)
            print(f"dry-run {label:15s} {wall:6.1f} s wall, peak {peak:.2f} GB   {last}")
    if not args.no_checks:
        check_shortcuts(args.study)


if __name__ == "__main__":
    main()
