"""The node cache: one valid copy when processes build at once; nothing half-written, ever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from workers.data.cache import cache_dir, cached_array

SHAPE = (4000, 256)

# A builder process: fills the entry slowly (so two builders overlap) and logs that it built.
BUILDER = """
import os, sys, time, hashlib
import numpy as np
from workers.data.cache import cached_array
log, key, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
def build(out):
    with open(log, "a") as fh:
        fh.write(f"build {os.getpid()}\\n")
    for a in range(0, out.shape[0], 500):
        out[a:a + 500] = (np.arange(a, a + 500)[:, None] + np.arange(out.shape[1])[None]) % 251
        time.sleep(delay)
arr = cached_array(key, (4000, 256), "uint8", build)
print(hashlib.sha1(np.ascontiguousarray(arr).tobytes()).hexdigest())
"""


def _expected() -> np.ndarray:
    return ((np.arange(SHAPE[0])[:, None] + np.arange(SHAPE[1])[None]) % 251).astype(np.uint8)


def _start(cache: Path, log: Path, key: str, delay: float) -> subprocess.Popen:
    env = {**os.environ, "ORTHOSWEEP_CACHE": str(cache)}
    return subprocess.Popen([sys.executable, "-c", BUILDER, str(log), key, str(delay)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_processes_building_at_once_yield_one_valid_cache(tmp_path: Path) -> None:
    cache, log = tmp_path / "cache", tmp_path / "builds.log"
    procs = [_start(cache, log, "demo-v1", 0.1) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    digests = {o[0].strip() for o in outs}
    assert len(digests) == 1  # both see the same bytes
    assert len(log.read_text().splitlines()) == 1  # the second waited for the first instead of rebuilding
    assert sorted(p.name for p in cache.iterdir()) == ["demo-v1.lock", "demo-v1.npy"]  # no partial files
    np.testing.assert_array_equal(np.load(cache / "demo-v1.npy", mmap_mode="r"), _expected())


@pytest.mark.slow
def test_two_processes_converting_the_same_official_file_share_one_entry(tmp_path: Path) -> None:
    from test_data_official import write_dsprites_npz

    npz = tmp_path / "dsprites.npz"
    arrays = write_dsprites_npz(npz, rows=2048)
    cache = tmp_path / "cache"
    code = ("import sys, numpy as np; from workers.data import load; ds = load('dsprites', path=sys.argv[1]); "
            "print(int(ds.observations_at(np.arange(len(ds))).sum()))")
    env = {**os.environ, "ORTHOSWEEP_CACHE": str(cache)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(npz)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert {o[0].strip() for o in outs} == {str(int(arrays["imgs"].sum()))}
    entries = sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))
    assert len(entries) == 1 and entries[0].startswith("dsprites-file-") and entries[0].endswith(".npy")


@pytest.mark.slow
def test_a_builder_killed_midway_publishes_nothing_and_the_next_one_builds(tmp_path: Path) -> None:
    cache, log = tmp_path / "cache", tmp_path / "builds.log"
    victim = _start(cache, log, "demo-v1", 0.5)
    deadline = time.monotonic() + 60
    while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # it is now writing its partial file
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not (cache / "demo-v1.npy").exists()
    assert any(p.name.endswith(".partial") for p in cache.iterdir())  # the dead builder's leftovers
    survivor = _start(cache, log, "demo-v1", 0.0)
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err
    assert sorted(p.name for p in cache.iterdir()) == ["demo-v1.lock", "demo-v1.npy"]  # leftovers removed
    np.testing.assert_array_equal(np.load(cache / "demo-v1.npy"), _expected())


def test_a_failing_build_leaves_no_file_and_a_corrupt_entry_is_rebuilt() -> None:
    def boom(out: np.ndarray) -> None:
        out[:10] = 1
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError, match="generator failed"):
        cached_array("fails-v1", (100, 8), np.uint8, boom)
    assert not [p for p in cache_dir().iterdir() if p.name.startswith("fails-v1") and not p.name.endswith(".lock")]

    built = []

    def fill(out: np.ndarray) -> None:
        built.append(1)
        out[:] = 7

    a = cached_array("rebuilt-v1", (100, 8), np.uint8, fill)
    assert isinstance(a, np.memmap) and not a.flags.writeable and (a == 7).all()
    cached_array("rebuilt-v1", (100, 8), np.uint8, fill)
    assert len(built) == 1  # the second call opened the published entry
    path = cache_dir() / "rebuilt-v1.npy"
    path.write_bytes(path.read_bytes()[:300])  # truncate it: a torn file from elsewhere
    assert (cached_array("rebuilt-v1", (100, 8), np.uint8, fill) == 7).all() and len(built) == 2
    assert (cached_array("rebuilt-v1", (50, 8), np.uint8, fill).shape == (50, 8)) and len(built) == 3


def test_cache_directory_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORTHOSWEEP_CACHE", str(tmp_path / "here"))
    assert cache_dir() == tmp_path / "here" and cache_dir().is_dir()
    monkeypatch.delenv("ORTHOSWEEP_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "orthosweep"
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("ORTHOSWEEP_CACHE", str(tmp_path / "afile"))
    from workers.data import DataError

    with pytest.raises(DataError, match="ORTHOSWEEP_CACHE"):
        cache_dir()
