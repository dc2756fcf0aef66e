"""Start-up cost of the read-only CLI commands against the floor of `python -c "import duckdb, pyarrow"`.

    .venv/bin/python bench/cli_startup.py [--repeats 15]

Builds a small study store (2 models x 6 restarts x 3 checkpoints, written through the store's sink; plus
results/quickstart when `make quickstart` has written it), then
times each command as a fresh process, interleaved with the baseline in every round so load drifts hit both
alike, and prints medians and the ratio command / baseline (issue 13's target: within 1.5x).

Both run with bytecode caching on (PYTHONDONTWRITEBYTECODE removed, the .pyc files under a temporary
PYTHONPYCACHEPREFIX written by the warm-up round): the installed duckdb and pyarrow come with compiled
bytecode, and so does orthosweep from its first run on a user's machine, so recompiling its sources on
every run would time the interpreter's compiler, not the command.
"""

from __future__ import annotations

import argparse
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

BASELINE = [sys.executable, "-c", "import duckdb, pyarrow"]


def build_store(tmp: Path) -> str:
    from sweep.driver import write_study_files
    from sweep.spec import load_study
    from testing.stub_trainable import stub_rows
    from testing.tiny_study import write_study
    from workers.store.write import write_rows

    study = load_study(write_study(tmp / "s.yaml", name="startup", storage=str(tmp / "res"), seeds=6, per_trial=6))
    write_study_files(study)  # as submit does
    for trial in study.trials:
        for epoch in (0, 1, 2):
            write_rows(study.study_uri, "checkpoints", stub_rows(trial, study.name, epoch, 0.0, 0))
    return study.study_uri


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=env)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--files", type=int, default=2000, help="files of the many-files store (0: skip that part)")
    args = ap.parse_args()
    cli = [sys.executable, "-m", "sweep.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        uri = build_store(Path(tmp))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        env["ORTHOSWEEP_CACHE"] = str(Path(tmp) / "cache")
        commands = {
            "views": cli + ["views"],
            "status STUDY": cli + ["status", uri],
            "sql STUDY 'SELECT ...'": cli + ["sql", uri, "SELECT model, avg(dto) FROM runs GROUP BY model"],
            "validate quickstart.yaml": cli + ["validate", str(ROOT / "studies" / "quickstart.yaml")],
            "--help": cli + ["--help"],
        }
        quickstart = ROOT / "results" / "quickstart"
        if (quickstart / "study.yaml").exists():  # the case, when `make quickstart` has run here
            commands["status results/quickstart"] = cli + ["status", str(quickstart)]
            commands["sql results/quickstart"] = cli + ["sql", str(quickstart), "SELECT model, avg(dto) FROM runs "
                                                        "GROUP BY model"]
        # `cold`: with an empty catalog cache every time, as the first command after files changed (e.g.
        # while a sweep writes them); the others find the catalog the warm-up run kept
        cold = {"status STUDY, cold": cli + ["status", uri],
                "sql STUDY 'SELECT ...', cold": commands["sql STUDY 'SELECT ...'"]}
        times: dict[str, list[float]] = {"baseline": [], **{k: [] for k in commands}, **{k: [] for k in cold}}
        for cmd in [BASELINE, *commands.values()]:  # warm the file cache, write the bytecode
            timed(cmd, env)
        for i in range(args.repeats):
            for name, cmd in commands.items():
                times["baseline"].append(timed(BASELINE, env))
                times[name].append(timed(cmd, env))
            for name, cmd in cold.items():
                times["baseline"].append(timed(BASELINE, env))
                times[name].append(timed(cmd, {**env, "ORTHOSWEEP_CACHE": str(Path(tmp) / f"cold-{name}-{i}")}))
    base = statistics.median(times["baseline"])
    print(describe())
    print(f"command: .venv/bin/python bench/cli_startup.py --repeats {args.repeats}")
    print(f"{'command':44s} {'median s':>9s} {'x baseline':>11s}")
    print(f"{'import duckdb, pyarrow':44s} {base:9.3f} {1.0:11.2f}")
    for name in [*commands, *cold]:
        med = statistics.median(times[name])
        print(f"{'orthosweep ' + name:44s} {med:9.3f} {med / base:11.2f}")
    if args.files:
        many_files(args.files, cli)


def many_files(n: int, cli: list[str]) -> None:
    """A store of `n` checkpoint files, as a sweep leaves before compaction: `sql` of the final states with a
    fresh catalog cache, with the catalog kept, and after 10 new files (the footers of the others reused)."""
    from testing.synthetic_store import checkpoint_row
    from workers.store.write import write_rows

    def write(prefix: str, count: int) -> None:
        for i in range(count):
            write_rows(uri, "checkpoints", [checkpoint_row(f"{prefix}{i}-{s}", 10, seed=s, written_at=t0)
                                            for s in range(4)])

    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    query = "SELECT count(*) FROM checkpoints WHERE epoch = 10"
    with tempfile.TemporaryDirectory() as tmp:
        uri = str(Path(tmp) / "res" / "many")
        Path(uri).mkdir(parents=True)
        (Path(uri) / "study.yaml").write_text("study: many\n")
        write("r", n)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env |= {"PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache"), "ORTHOSWEEP_CACHE": str(Path(tmp) / "cache")}
        cmd = cli + ["sql", uri, query]
        timed(cmd, {**env, "ORTHOSWEEP_CACHE": str(Path(tmp) / "warmup")})  # bytecode, file cache
        rows: dict[str, list[float]] = {"no earlier catalog": [], "catalog kept (files unchanged)": [],
                                        "10 new files (earlier footers reused)": []}
        for i in range(3):
            rows["no earlier catalog"].append(timed(cmd, {**env, "ORTHOSWEEP_CACHE": str(Path(tmp) / f"c{i}")}))
            timed(cmd, env)
            rows["catalog kept (files unchanged)"].append(timed(cmd, env))
            write(f"new{i}-", 10)
            rows["10 new files (earlier footers reused)"].append(timed(cmd, env))
        print(f"\nstore of {n:,} checkpoint files (4 rows each), `orthosweep sql STUDY '{query}'`, median of 3:")
        for name, secs in rows.items():
            print(f"  {name:44s} {statistics.median(secs):9.3f} s")


if __name__ == "__main__":
    main()
