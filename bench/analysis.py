"""Analysis at scale: a generated store of 100,000 restarts × 10 checkpoints (1,000,000 rows).

    .venv/bin/python bench/analysis.py [--restarts 100000] [--checkpoints 10] [--configs 10] [--keep DIR]

Prints the machine, then the time of: a grouped SQL query over the deduplicated `checkpoints` view (side
by side with the same query over the raw rows, and over DuckDB's own read_parquet of the same files, to
show what deduplication and the pyarrow-dataset path cost), `stats`, `plots` and `report`, and the peak
resident memory. Targets (issue 7): grouped query <= 1 s, full report <= 60 s, peak memory <= 4 GB.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from machine import describe  # noqa: E402  bench/machine.py (the script's folder is on sys.path)

GROUPED = ("SELECT config_key, epoch, count(*) AS n, avg(dto) AS dto, stddev_samp(dto) AS dto_sd, avg(mig) AS mig, "
           "quantile_cont(mig, 0.5) AS mig_median FROM {src} GROUP BY config_key, epoch")


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # ru_maxrss is in KiB on Linux


def timed(label: str, fn, repeat: int = 1):  # noqa: ANN001, ANN202
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    print(f"  {label:<58} {best:8.3f} s   (peak RSS so far {peak_gb():.2f} GB)")
    return best, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--restarts", type=int, default=100_000)
    ap.add_argument("--checkpoints", type=int, default=10)
    ap.add_argument("--configs", type=int, default=10, help="restart groups (beta values)")
    ap.add_argument("--keep", help="write the store here and keep it (default: a temporary folder)")
    ap.add_argument("--duplicates", type=float, default=0.01,
                    help="fraction of rows re-emitted by a retry in the second store (default 0.01)")
    ap.add_argument("--generate", metavar="STUDY_DIR", help=argparse.SUPPRESS)  # the child's job
    args = ap.parse_args()
    if args.generate:
        from testing.synthetic_store import bench_table, reemitted, write_bench_store
        from workers.store.layout import filesystem
        from workers.store.write import write_table_atomic

        rng = np.random.default_rng(0)
        table = bench_table(args.restarts, args.checkpoints, args.configs, rng)
        write_bench_store(args.generate, table)
        if args.duplicates:
            write_bench_store(args.generate + "-reemitted", table)  # the same store plus a retry's re-emits
            fs, base = filesystem(args.generate + "-reemitted")
            write_table_atomic(fs, f"{base}/checkpoints/dataset={table['dataset'][0]}/model={table['model'][0]}",
                               "reemitted.parquet", reemitted(table, args.duplicates, rng))
        return 0

    import duckdb

    from analysis.figures import all_figures
    from analysis.report import build_report, study_statistics
    from workers.store.files import parquet_files
    from workers.store.layout import resolve_studies
    from workers.store.views import connect
    print(describe())
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="orthosweep-bench-"))
    study = str(root / "bench")
    n = args.restarts * args.checkpoints
    print(f"store: {args.restarts:,} restarts x {args.checkpoints} checkpoints = {n:,} rows, {args.configs} groups")
    try:
        # generated in a child process, so that the peak memory below is the analysis's alone
        timed("generate + write the store in a child process (not a target)", lambda: subprocess.run(
            [sys.executable, __file__, "--generate", study, "--restarts", str(args.restarts), "--checkpoints",
             str(args.checkpoints), "--configs", str(args.configs), "--duplicates", str(args.duplicates)],
            check=True))
        files = parquet_files(resolve_studies(study)[0], "checkpoints")
        size = sum(Path(f).stat().st_size for f in files) / 1e6
        print(f"  {len(files)} files, {size:.0f} MB")
        t_conn, con = timed("connect (list + validate footers, create views)", lambda: connect(study))
        t_dedup, res = timed("grouped query over checkpoints (deduplicated view)",
                             lambda: con.execute(GROUPED.format(src="checkpoints")).fetchall(), repeat=3)
        assert len(res) == args.configs * args.checkpoints
        t_raw, _ = timed("same query over checkpoints_raw (no dedup)",
                         lambda: con.execute(GROUPED.format(src="checkpoints_raw")).fetchall(), repeat=3)
        native = duckdb.connect()
        paths = parquet_files(resolve_studies(study)[0], "checkpoints")
        native.execute(f"CREATE VIEW raw AS SELECT * FROM read_parquet({paths!r})")
        t_native, _ = timed("same query, DuckDB read_parquet of the same files (no dedup)",
                            lambda: native.execute(GROUPED.format(src="raw")).fetchall(), repeat=3)
        t_groups, _ = timed("SELECT * FROM groups (the groups view)",
                            lambda: con.execute("SELECT * FROM groups").fetchall(), repeat=3)
        t_dups = None
        if args.duplicates:
            print(f"same store plus {args.duplicates:.0%} of its rows re-emitted by a retry (deduplication in use):")
            dup_con = connect(study + "-reemitted")
            t_dups, res = timed("grouped query over checkpoints (deduplicated view)",
                                lambda: dup_con.execute(GROUPED.format(src="checkpoints")).fetchall(), repeat=3)
            assert sum(r[2] for r in res) == n  # every re-emit removed
            timed("SELECT * FROM groups (the groups view)",
                  lambda: dup_con.execute("SELECT * FROM groups").fetchall(), repeat=3)
            dup_con.close()
        print("analysis of the duplicate-free store:")
        t_stats, _ = timed("stats (per group, topk split, correlations, 1000 bootstrap)",
                           lambda: study_statistics(con, n_boot=1000))
        t_plots, figs = timed("plots (every figure as PNG)", lambda: all_figures(con, study))
        t_report, html = timed("report (stats + figures + HTML)", lambda: build_report(con, study))
        print(f"  report: {len(html) / 1e6:.1f} MB HTML, {len(figs)} figures")
        peak = peak_gb()
        print("ratios (same run):")
        print(f"  dedup view / raw rows          {t_dedup / t_raw:6.2f}x")
        print(f"  pyarrow dataset / read_parquet {t_raw / t_native:6.2f}x")
        checks = [("grouped query (dedup view)", t_dedup, 1.0, "s")]
        if t_dups is not None:
            print(f"  with re-emits / without          {t_dups / t_dedup:6.2f}x")
            checks.append(("grouped query with re-emits", t_dups, 1.0, "s"))
        print("targets:")
        for name, value, target, unit in (*checks,
                                          ("full report", t_report, 60.0, "s"), ("peak memory", peak, 4.0, "GB")):
            print(f"  {name:<28} {value:8.2f} {unit} (target <= {target:g} {unit}): "
                  f"{'met' if value <= target else 'MISSED'}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
