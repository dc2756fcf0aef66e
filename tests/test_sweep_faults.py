"""Faults at the edges of a sweep, on one real local Ray: a storage that fills up mid-sweep stops it once with
one line and no traceback, and `resume` finishes it (also from damaged Tune state) with every row once."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sweep_helpers import STUB, view_counts, write_study

from sweep.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def nospace_flag(tmp_path_factory: pytest.TempPathFactory):
    """One local Ray whose workers see the stub's ENOSPC knob (a file: while it exists, stub writes fail)."""
    import ray

    flag = tmp_path_factory.mktemp("knob") / "nospace"
    os.environ["ORTHOSWEEP_STUB_NOSPACE"] = str(flag)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        yield flag
    finally:
        ray.shutdown()
        os.environ.pop("ORTHOSWEEP_STUB_NOSPACE", None)


class SmallDisk:
    """A 4 MB tmpfs filled up to `room` bytes (needs root), else the stub's injected ENOSPC: `how` says which."""

    def __init__(self, path: Path, flag: Path):
        self.path, self.flag = path, flag
        path.mkdir()
        mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)],
                                                       capture_output=True).returncode == 0
        self.how = "tmpfs" if mounted else "injected"

    def fill(self, room: int) -> None:
        if self.how == "tmpfs":
            free = shutil.disk_usage(self.path).free
            (self.path / "filler").write_bytes(b"\0" * max(0, free - room))
        else:
            self.flag.touch()

    def free(self) -> None:
        (self.path / "filler").unlink(missing_ok=True)
        self.flag.unlink(missing_ok=True)

    def close(self) -> None:
        if self.how == "tmpfs":
            subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path, nospace_flag: Path):
    disk = SmallDisk(tmp_path / "disk", nospace_flag)
    try:
        yield disk
    finally:
        disk.free()
        disk.close()


def test_a_full_disk_stops_the_sweep_once_and_resume_finishes_it(small_disk: SmallDisk, tmp_path: Path,
                                                                   capfd) -> None:
    path = write_study(tmp_path / "s.yaml", name="full", storage=str(small_disk.path), seeds=12, per_trial=1,
                       epochs=2)
    study_dir = str(small_disk.path / "full")
    small_disk.fill(room=300_000)
    assert main(["submit", str(path), "--trainable", STUB]) == 3
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, f"[{small_disk.how}]\n{out}{err}"
    line = [ln for ln in err.splitlines() if ln.startswith("error: storage")]
    assert len(line) == 1, err
    assert study_dir in line[0] and "no space left on the device" in line[0], line
    assert f"free space, then `orthosweep resume {study_dir}`" in line[0] and "of 24 restarts are complete" in line[0]
    complete = int(line[0].split(" of 24 restarts")[0].rsplit("(", 1)[-1])
    assert complete < 24

    small_disk.free()
    assert main(["resume", study_dir, "--trainable", STUB]) == 0, capfd.readouterr()
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, err
    assert "24/24 restarts done, 0 failed" in out
    _, dedup, distinct = view_counts(study_dir)
    assert dedup == distinct == 24 * 3


def _break_tune_state(study_dir: Path, how: str) -> None:
    run = sorted(p for p in (study_dir / "tune").glob("run-*") if p.is_dir())[-1]
    state = sorted(run.glob("experiment_state-*.json"))[-1]
    if how == "torn":
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    else:  # whole JSON, but not the state Tune wrote
        state.write_text('{"runner_data": {}, "trial_data": [["{}", "{}"]]}')


# torn: refused before Tune is handed it (sweep.tune_restore.state_problem); inconsistent: Tune reads it but
# finds no trial it can rerun, so the restored experiment runs nothing
@pytest.mark.parametrize("how", ["torn", "inconsistent"])
def test_resume_falls_back_to_a_fresh_run_over_damaged_tune_state(how: str, nospace_flag: Path, tmp_path: Path,
                                                                  capfd) -> None:
    path = write_study(tmp_path / "s.yaml", name="torn", storage=str(tmp_path / "store"), seeds=4, per_trial=2,
                       epochs=2)
    study_dir = tmp_path / "store" / "torn"
    assert main(["submit", str(path), "--trainable", STUB]) == 0
    # half the restarts' final rows gone, as if the driver died before they were written
    finals = sorted((study_dir / "checkpoints").rglob("*.parquet"))
    for f in finals[len(finals) // 2:]:
        f.unlink()
    _break_tune_state(study_dir, how)
    capfd.readouterr()
    assert main(["resume", str(study_dir), "--trainable", STUB]) == 0
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, err
    if how == "torn":
        assert "a fresh Tune run takes over what the store says is left" in out, out
    # either way the store plans what is left, once
    assert out.count("4 already in the store, 4 to train in 2 trials") == 1, out
    assert "8/8 restarts done, 0 failed" in out
    _, dedup, distinct = view_counts(str(study_dir))
    assert dedup == distinct == 8 * 3
