"""Fault-injection soak: a sweep of >= 200 restarts disturbed on purpose, then checked row by row.

    .venv/bin/python bench/faults.py [--seeds 104] [--driver-kills 3] [--evaluate-kills 2] [--seed 0] [--keep DIR]

The study runs the stub trainable (testing.stub_trainable: a fixed value per (run_key, epoch), so an
undisturbed run's values are known without running it). Faults, each followed by `orthosweep resume` or a
re-run: the driver SIGKILLed (with the local Ray it started) at random moments; a trial's worker process
SIGKILLed while it trains and checkpoints; a stored Parquet file torn in half; `orthosweep compact` SIGKILLed
mid-merge. At the end every (run_key, epoch) must appear exactly once in the deduplicated view and every
value must equal the stub's.

`evaluate` killed mid-write needs stored weights, which the stub does not write: a second, small study is
trained for real (synth_lin, β-VAE), copied, and its copy scored undisturbed with `orthosweep evaluate
--metrics sap,dci`; the original's `evaluate` is SIGKILLed while its tasks write, then run again. Every
(run_key, epoch, metric) must then be stored exactly once and every value must equal the copy's.

Prints the faults injected and survived. Not part of the test suite (minutes).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testing.stub_trainable import stub_value  # noqa: E402
from testing.tiny_study import STUB, write_study  # noqa: E402


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sweep.cli", *args]


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    e.update({"PYTHONPATH": str(ROOT), "ORTHOSWEEP_STUB_SLEEP": "1.0"})
    return e


def complete(study_dir: str) -> int:
    from workers.store.restarts import completed_run_keys

    return len(completed_run_keys(study_dir))


def start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "a") as out:
        return subprocess.Popen(args, env=env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=ROOT)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def trial_workers() -> list[int]:
    """Pids of Ray worker processes running a trial (their process title names the trainable)."""
    out = subprocess.run(["pgrep", "-f", "ray::ImplicitFunc|orthosweep_trial"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


EVAL_METRICS = ("sap", "dci")


def evaluate_soak(work: Path, rng: random.Random, kills: int, faults: Counter[str], log: Path) -> bool:
    """Train a small real study, score an undisturbed copy, and score the study itself with `evaluate` killed
    `kills` times while it writes; True when every (run_key, epoch, metric) is stored once with the copy's
    value."""
    import shutil

    import yaml

    from workers.store.views import connect

    path = write_study(work / "evalsoak.yaml", name="evalsoak", storage=str(work / "eval"), seeds=24, per_trial=8,
                       epochs=2, models=("beta_vae",))
    spec = yaml.safe_load(path.read_text())
    spec["eval"] = {"metrics": ["dto"], "n_eval": 64, "n_train_supervised": 300, "n_test_supervised": 150}
    path.write_text(yaml.safe_dump(spec))
    study_dir, ref_dir = str(work / "eval" / "evalsoak"), str(work / "eval_ref" / "evalsoak")
    real_env = {k: v for k, v in env().items() if k != "ORTHOSWEEP_STUB_SLEEP"}

    def run(*args: str) -> None:
        res = subprocess.run(cli(*args), env=real_env, cwd=ROOT, capture_output=True, text=True, timeout=1200)
        with open(log, "a") as out:
            out.write(res.stdout + res.stderr)
        if res.returncode != 0:
            raise SystemExit(f"[faults] {' '.join(args[:2])} failed ({res.returncode}); see {log}")

    run("submit", str(path))
    shutil.copytree(study_dir, ref_dir)
    run("evaluate", ref_dir, "--metrics", ",".join(EVAL_METRICS))
    evaluations = Path(study_dir, "evaluations")
    for _ in range(kills):
        before = len(list(evaluations.rglob("*.parquet"))) if evaluations.exists() else 0
        proc = subprocess.Popen(cli("evaluate", study_dir, "--metrics", ",".join(EVAL_METRICS)), env=real_env,
                                cwd=ROOT, stdout=open(log, "a"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 600
        while proc.poll() is None and time.time() < deadline:
            if evaluations.exists() and len(list(evaluations.rglob("*.parquet"))) > before:
                time.sleep(rng.uniform(0, 1.0))  # among the tasks' writes
                break
            time.sleep(0.1)
        if proc.poll() is None:
            kill_group(proc)
            faults["evaluate SIGKILLed mid-write"] += 1
        else:
            print("[faults] evaluate finished before it could be killed (not counted)", flush=True)
    partial = len(connect(study_dir).execute("SELECT * FROM evaluations").fetchall()) if evaluations.exists() else 0
    print(f"[faults] evaluate soak: {partial} evaluation rows stored when the last kill landed", flush=True)
    run("evaluate", study_dir, "--metrics", ",".join(EVAL_METRICS))

    query = ("SELECT run_key, epoch, sap, dci_disentanglement, dci_completeness, dci_informativeness_test "
             "FROM checkpoints WHERE status = 'ok'")
    ref = {(r[0], r[1]): r[2:] for r in connect(ref_dir).execute(query).fetchall()}
    con = connect(study_dir)
    got = con.execute(query).fetchall()
    stored = Counter((r[0], r[1], r[2]) for r in con.execute(
        "SELECT run_key, epoch, metric FROM evaluations_raw").fetchall())
    expected = len(ref) * len(EVAL_METRICS)
    once = len(stored) == expected and all(n == 1 for n in stored.values())
    same = len(got) == len(ref) and all(ref.get((r[0], r[1])) == r[2:] for r in got)
    print(f"[faults] evaluate soak: {len(ref)} checkpoints x {len(EVAL_METRICS)} metrics; "
          f"{len(stored)} (run_key, epoch, metric) stored of {expected}, each exactly once: {once}; "
          f"values equal to the undisturbed copy's: {same}", flush=True)
    return once and same and None not in {v for r in got for v in r[2:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=104, help="seeds per model (two models: 2x restarts)")
    ap.add_argument("--driver-kills", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--evaluate-kills", type=int, default=2, help="times `evaluate` is SIGKILLed mid-write (0: skip)")
    ap.add_argument("--keep", help="work in this folder and keep it")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    work = Path(a.keep or tempfile.mkdtemp(prefix="orthosweep-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    study_file = write_study(work / "soak.yaml", name="soak", storage=str(work / "res"), seeds=a.seeds, per_trial=8,
                             epochs=2, resources={"max_failures": 3, "max_concurrent_trials": 2})
    study_dir = str(work / "res" / "soak")
    total = 2 * a.seeds
    log = work / "drivers.log"
    faults: Counter[str] = Counter()
    started = time.time()

    # 1. the driver killed at random moments, each time resumed; once, a trial's worker killed while it trains
    command = cli("submit", str(study_file), "--trainable", STUB)
    for i in range(a.driver_kills):
        driver = start(command, log)
        # killed once a random share of the study is stored (a moment mid-sweep however fast this machine is)
        target = int(total * (i + rng.uniform(0.3, 0.9)) / (a.driver_kills + 1))
        deadline = time.time() + 300
        killed_worker = False
        while time.time() < deadline and driver.poll() is None and complete(study_dir) < target:
            time.sleep(0.5)
            if i == 0 and not killed_worker and (pids := trial_workers()):
                time.sleep(rng.uniform(0, 1.5))  # into the trial's epochs and checkpoints
                os.kill(rng.choice(pids), signal.SIGKILL)
                faults["trial worker SIGKILLed while training"] += 1
                killed_worker = True
        if driver.poll() is None:
            kill_group(driver)
            faults["driver SIGKILLed"] += 1
        print(f"[faults] after driver run {i + 1}: {complete(study_dir)}/{total} restarts complete", flush=True)
        command = cli("resume", study_dir, "--trainable", STUB)

    # 2. a stored Parquet file torn in half (a reader skips it with a warning; its rows are trained again)
    files = sorted(Path(study_dir, "checkpoints").rglob("*.parquet"))
    if files:
        victim = rng.choice(files)
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
        faults["Parquet file torn"] += 1

    # 3. compact killed mid-merge
    compact = start(cli("compact", study_dir), log)
    # killed as soon as its first merged file (or that file's temporary) appears: its partition's old files
    # are then still there, and the other partitions not merged yet
    while compact.poll() is None and not any(
            "-compacted" in p.name for p in Path(study_dir).rglob("*.parquet*")):
        time.sleep(0.002)
    time.sleep(rng.uniform(0, 0.02))
    if compact.poll() is None:
        kill_group(compact)
        faults["compact SIGKILLed mid-merge"] += 1
    else:
        print("[faults] compact finished before it could be killed (not counted)", flush=True)

    # 4. resume until the study is complete (each run is one more chance for a fault to show)
    for _ in range(3):
        res = subprocess.run(cli("resume", study_dir, "--trainable", STUB), env=env(), cwd=ROOT,
                             capture_output=True, text=True, timeout=1200)
        with open(log, "a") as out:
            out.write(res.stdout + res.stderr)
        if res.returncode == 0 and complete(study_dir) == total:
            break
    subprocess.run(cli("compact", study_dir), env=env(), cwd=ROOT, capture_output=True, timeout=600)

    # 5. evaluate killed mid-write, on a small study trained for real
    eval_ok = True
    if a.evaluate_kills:
        eval_ok = evaluate_soak(work, rng, a.evaluate_kills, faults, log)

    # 6. every (run_key, epoch) exactly once, every value the undisturbed run's
    from workers.store.views import connect

    rows = connect(study_dir).execute("SELECT run_key, epoch, loss, recon, kl, dto, mig FROM checkpoints").fetchall()
    keys = Counter((r[0], r[1]) for r in rows)
    once = len(keys) == total * 3 and all(n == 1 for n in keys.values())
    wrong = [r for r in rows if tuple(r[2:]) != tuple(stub_value(r[0], r[1], salt) for salt in (1, 2, 3, 4, 5))]
    injected = sum(faults.values())
    ok = once and not wrong and eval_ok
    missing = Counter(e for rk in {r[0] for r in rows} for e in range(3) if (rk, e) not in keys)
    print(f"[faults] study of {total} restarts, {time.time() - started:.0f} s, work folder {work}")
    for what, n in sorted(faults.items()):
        print(f"[faults]   {what}: {n}")
    print(f"[faults] faults injected: {injected}, survived: {injected if ok else 'not all (rows lost, below)'}")
    print(f"[faults] rows: {len(rows)} for {len(keys)} (run_key, epoch) of {total * 3} expected; "
          f"each exactly once: {once}; values differing from the undisturbed run: {len(wrong)}"
          + (f"; missing (run_key, epoch) by epoch: {dict(sorted(missing.items()))}" if missing else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
