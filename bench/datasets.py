"""Dataset benchmark: build, open, batch and per-trial RAM of dsprites and shapes3d, on demand vs cached.

    .venv/bin/python bench/datasets.py [--cache DIR] [--steps 200] [--batch 1024] [--skip-shapes3d-cache]

For each procedural dataset it measures, side by side in one run:
- open: constructing the on-demand dataset (sprite table / scene layers) and opening the built cache;
- build: writing the full grid into a fresh node cache (bit-packed dsprites, uint8 shapes3d);
- batch: `observations_at` of `--batch` random indices (a seed block's step: S·B), on demand vs cached;
- RAM per trial: private anonymous memory (RssAnon) a fresh process adds by opening the dataset and
  drawing batches (the shared cache's file pages are reported separately: they are the node's one copy);
- end to end: open (+ build for the cache) + steps × batch, and the break-even number of steps
  (the library's default rule switches to the cache after one grid's worth of on-demand images).
Targets (issue 3): dsprites build ≤ 60 s, shapes3d build ≤ 5 min, cached open ≤ 2 s, RAM ≤ 100 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import describe  # noqa: E402

# A fresh process measuring its own memory: baseline, after opening, after drawing batches.
RAM_PROBE = """
import json, sys, numpy as np
def status():
    f = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
    kb = lambda k: int(f[k].split()[0]) * 1024
    return {"anon": kb("RssAnon"), "file": kb("RssFile"), "hwm": kb("VmHWM")}
name, steps, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
from workers.data import load
base = status()
ds = load(name)
opened = status()
rng = np.random.default_rng(0)
for _ in range(steps):
    x = ds.observations_at(rng.integers(0, len(ds), batch))
assert ds.uses_cache == (sys.argv[4] == "always")
after = status()
print(json.dumps({"base": base, "opened": opened, "after": after}))
"""


def timed(fn, repeat: int = 1):
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def batch_times(get, n: int, batch: int, repeat: int = 20) -> float:
    """Mean seconds per batch of `batch` random indices, in steady state."""
    rng = np.random.default_rng(0)
    idx = [rng.integers(0, n, batch) for _ in range(repeat)]
    get(idx[0])  # warm
    t0 = time.perf_counter()
    for i in idx:
        get(i)
    return (time.perf_counter() - t0) / repeat


def ram_probe(name: str, mode: str, cache: Path, steps: int, batch: int) -> dict:
    """Memory of a fresh process drawing `steps` batches; mode "never" = on demand, "always" = cache."""
    env = {**os.environ, "ORTHOSWEEP_CACHE": str(cache), "OMP_NUM_THREADS": "1", "ORTHOSWEEP_DATA_CACHE": mode}
    out = subprocess.run([sys.executable, "-c", RAM_PROBE, name, str(steps), str(batch), mode], env=env,
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def mb(x: float) -> str:
    return f"{x / 2**20:.1f} MB"


def bench_one(name: str, cache: Path, steps: int, batch: int, build: bool) -> None:
    from workers.data import load

    print(f"\n== {name} ==")
    os.environ["ORTHOSWEEP_DATA_CACHE"] = "never"
    def open_on_demand():
        fresh = load(name)
        fresh.observations_at(np.zeros(1, dtype=np.int64))  # renders the sprite table / scene layers
        return fresh

    t_open, ds = timed(open_on_demand, repeat=2)
    t_demand = batch_times(ds.observations_at, len(ds), batch)
    print(f"on demand: open (load + first image) {t_open:.2f} s; batch of {batch}: {t_demand * 1e3:.1f} ms")
    ram = ram_probe(name, "never", cache, steps, batch)
    own = ram["after"]["anon"] - ram["base"]["anon"]
    print(f"on demand: RAM per trial (RssAnon added after {steps} batches) {mb(own)}; "
          f"peak RSS {mb(ram['after']['hwm'])}")
    if not build:
        print("cache: skipped (--skip-shapes3d-cache)")
        return
    t_build, rows = timed(ds.build_cache)
    size = rows.nbytes
    os.environ["ORTHOSWEEP_DATA_CACHE"] = "auto"
    probe = np.arange(batch)

    def open_cached():
        fresh = load(name)
        fresh.observations_at(probe)
        assert fresh.uses_cache
        return fresh

    t_cached_open, _ = timed(open_cached, repeat=3)
    assert ds.uses_cache
    t_touch, _ = timed(lambda: [int(rows[a:a + 65536].max()) for a in range(0, len(rows), 65536)])
    print(f"cache: first touch of every page of the mapping (once per process) {t_touch:.2f} s")
    t_cached = batch_times(ds.observations_at, len(ds), batch)
    print(f"cache: build {t_build:.1f} s ({mb(size)} on disk); cached open (load + first batch from the "
          f"existing entry) {t_cached_open * 1e3:.1f} ms; batch of {batch}: {t_cached * 1e3:.1f} ms")
    ram = ram_probe(name, "always", cache, steps, batch)
    own = ram["after"]["anon"] - ram["base"]["anon"]
    print(f"cache: RAM per trial (RssAnon added) {mb(own)}; shared cache pages mapped (RssFile) "
          f"{mb(ram['after']['file'])}; peak RSS {mb(ram['after']['hwm'])}")
    ratio = t_demand / t_cached
    print(f"ratio on-demand / cached batch time: {ratio:.2f}x")
    for n_steps in (1_000, 10_000, 100_000):
        e_demand = t_open + n_steps * t_demand
        e_cache = t_build + t_cached_open + n_steps * t_cached
        print(f"end to end, {n_steps:>6} steps on a fresh node: on demand {e_demand:8.1f} s, "
              f"cache (build once) {e_cache:8.1f} s")
    if t_demand > t_cached:
        print(f"break-even: the cache pays off after {t_build / (t_demand - t_cached):.0f} steps on one node "
              "(sooner when several trials share it)")
    else:
        print("break-even: never — on demand is faster per batch and needs no build")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", help="cache directory to build into (default: a fresh temporary one, removed)")
    ap.add_argument("--steps", type=int, default=100, help="batches drawn in the RAM probe")
    ap.add_argument("--batch", type=int, default=1024, help="indices per batch (seeds_per_trial × batch_size)")
    ap.add_argument("--skip-shapes3d-cache", action="store_true", help="skip the 5.9 GB shapes3d cache build")
    args = ap.parse_args()
    print(describe(), f"numpy {np.__version__}")
    tmp = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="datasets-bench-cache-", dir="/var/tmp"))
    os.environ["ORTHOSWEEP_CACHE"] = str(tmp)
    try:
        bench_one("dsprites", tmp, args.steps, args.batch, build=True)
        bench_one("shapes3d", tmp, args.steps, args.batch, build=not args.skip_shapes3d_cache)
    finally:
        if not args.cache:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
