"""One copy per node: arrays built once into a memory-mapped `.npy` cache shared by every process.

The cache directory is `$ORTHOSWEEP_CACHE` (default `~/.cache/orthosweep`). Each entry is one `.npy` file
named by a key that includes the generator version (or the source file's identity), so a new generator
never reads an old cache. Building is safe when several processes ask at once:

- builders serialise on an `flock` of `<key>.lock` (the others wait, then open the finished file);
- a builder writes `<key>.<pid>.<random>.partial` and publishes it with one atomic `os.replace`, so a
  reader sees either no file or a complete one — never a torn one, even if the builder dies;
- an entry whose header or size does not match what was asked for is rebuilt, not trusted.

Opened entries are read-only memmaps: the pages live once in the node's page cache, not per process.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .base import DataError


def cache_dir() -> Path:
    """The node's dataset cache directory (created if missing)."""
    root = Path(os.environ.get("ORTHOSWEEP_CACHE") or Path.home() / ".cache" / "orthosweep").expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"dataset cache {str(root)!r} (env ORTHOSWEEP_CACHE) cannot be created: {e}; "
                        "point ORTHOSWEEP_CACHE at a writable directory") from e
    if not root.is_dir():
        raise DataError(f"dataset cache {str(root)!r} (env ORTHOSWEEP_CACHE) is not a directory")
    return root


def _open_valid(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    """The entry as a read-only memmap if it is complete and of the expected shape/dtype, else None."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None  # missing, truncated or not an .npy file
    if arr.shape != tuple(shape) or arr.dtype != dtype:
        return None
    return arr


@contextmanager
def _exclusive(lock_path: Path, wait: bool):
    """Hold the builder lock; yields False at once instead of waiting if `wait` is off and it is taken."""
    with open(lock_path, "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def cached_array(key: str, shape: tuple[int, ...], dtype: np.dtype | str,
                 build: Callable[[np.ndarray], None], wait: bool = True) -> np.ndarray | None:
    """The cache entry `key` as a read-only memmap of `shape`/`dtype`, built by `build(out)` if needed.

    `build` receives a writable memmap of the final shape and must fill all of it (it may raise: then
    nothing is published and the partial file is removed). Returns the published, read-only array —
    or None when `wait` is False and another process is building the entry right now.
    """
    dtype = np.dtype(dtype)
    root = cache_dir()
    final = root / f"{key}.npy"
    arr = _open_valid(final, shape, dtype)
    if arr is not None:
        return arr
    with _exclusive(root / f"{key}.lock", wait) as locked:
        if not locked:
            return None
        arr = _open_valid(final, shape, dtype)  # another process may have built it while we waited
        if arr is not None:
            return arr
        for stale in root.glob(f"{key}.*.partial"):  # left by a builder that died; we hold the lock
            stale.unlink(missing_ok=True)
        partial = root / f"{key}.{os.getpid()}.{secrets.token_hex(4)}.partial"
        try:
            out = np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=tuple(shape))
            build(out)
            out.flush()
            del out
            try:
                with open(partial, "rb+") as fh:
                    os.fsync(fh.fileno())
                os.replace(partial, final)
            except FileNotFoundError as e:
                raise DataError(f"dataset cache: {str(partial)!r} was deleted while it was being built (is "
                                f"something cleaning {str(root)!r}?); nothing was published, try again") from e
            _fsync_dir(root)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    arr = _open_valid(final, shape, dtype)
    if arr is None:  # pragma: no cover - only if the file system lies
        raise DataError(f"dataset cache entry {str(final)!r} is unreadable right after it was written")
    return arr


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_identity(path: Path) -> str:
    """A short stable identity of a source file: its resolved path, size and modification time."""
    import hashlib

    st = path.stat()
    text = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def fill_in_chunks(out: np.ndarray, rows: int, chunk: int, produce: Callable[[int, int], np.ndarray]) -> None:
    """out[a:b] = produce(a, b) over [0, rows) in chunks, keeping peak memory at one chunk."""
    for a in range(0, rows, chunk):
        b = min(rows, a + chunk)
        out[a:b] = produce(a, b)
