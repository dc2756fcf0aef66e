"""Where view catalogs are built, and which built ones can be opened again as they are.

`views_connection` writes its views into a DuckDB database file (the catalog) and opens it read-only.
Building one reads every Parquet footer of the tables it covers and binds every view (~40 ms for a small
store, more with many files); opening a built one takes ~2 ms. A catalog built over local files is kept,
under a key that hashes:

- the views it holds;
- the path, size and modification time of every Parquet file listed in the tables they read (readable or
  not: a skipped file is part of the snapshot too);
- the source of the modules that generate the views' SQL, and DuckDB's version.

The store's files are never modified in place (the sink and compaction write a new file and rename it, and
compaction deletes its sources afterwards), so an unchanged listing means unchanged contents and the kept
catalog reads exactly what a new one would. While a sweep writes files every listing is new, and every
command builds its catalog as before.

Each catalog also records every listed file's size, modification time and footer verdict (its columns, or
why it is unreadable). A new catalog of the same store (`scope_key`: the same study folders and partition,
the same code) starts from the latest one's records and reads only the footers of files that are new or
changed since, so `status` during a sweep of thousands of files reads the few files written meanwhile.

Entries live in `$ORTHOSWEEP_CACHE/catalogs` (default `~/.cache/orthosweep/catalogs`), are published by an
atomic rename, and only the newest MAX_ENTRIES, within MAX_BYTES in all, are kept. Without a writable cache
directory the catalog is built in a temporary file and removed once opened.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import duckdb

MAX_ENTRIES = 64
MAX_BYTES = 256 * 2**20  # a catalog of 2,000 files takes ~1.6 MB
SUFFIX = ".duckdb"

# The modules whose code decides what a catalog holds: a change to any of them is a new key.
_SOURCES = ("views.py", "files.py", "schema.py", "../metrics/registry.py")


def cache_root() -> Path | None:
    """The directory of kept catalogs (created if missing), or None when it cannot be written."""
    root = Path(os.environ.get("ORTHOSWEEP_CACHE") or Path.home() / ".cache" / "orthosweep").expanduser()
    root = root / "catalogs"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return root if os.access(root, os.W_OK) else None


@functools.cache  # the sources cannot change under a running process: read and hash them once
def _code_fingerprint() -> bytes:
    here = Path(__file__).parent
    h = hashlib.sha256(duckdb.__version__.encode())
    for name in _SOURCES:
        h.update((here / name).read_bytes())
    return h.digest()


def catalog_key(views: Iterable[str], files: Iterable[tuple[str, str, int, int]]) -> str:
    """Key of the catalog holding `views` over `files` = (table, path, size, mtime_ns) of every listed file."""
    h = hashlib.sha256(_code_fingerprint())
    h.update(repr(sorted(views)).encode())
    for table, path, size, mtime_ns in sorted(files):
        h.update(f"\0{table}\0{path}\0{size}\0{mtime_ns}".encode())
    return h.hexdigest()[:32]


def scope_key(study_paths: Iterable[str], partition: tuple[str, str] | None) -> str:
    """Which store a catalog covers (its study folders and partition), whatever the files in it now."""
    h = hashlib.sha256(_code_fingerprint())
    h.update(repr((sorted(study_paths), partition)).encode())
    return h.hexdigest()[:32]


def remember(scope: str, kept: str) -> None:
    """Note `kept` as the latest catalog of `scope` (atomic; a lost race leaves another valid one)."""
    root = Path(kept).parent
    tmp = root / f".{scope}.{os.getpid()}.latest"
    tmp.write_text(Path(kept).name)
    os.replace(tmp, root / f"{scope}.latest")


def latest_catalog(scope: str) -> Path | None:
    """The latest kept catalog of `scope`, if it is still kept."""
    root = cache_root()
    if root is None:
        return None
    try:
        path = root / (root / f"{scope}.latest").read_text().strip()
    except OSError:
        return None
    return path if path.name.endswith(SUFFIX) and path.is_file() else None


def kept_catalog(key: str) -> Path | None:
    """The kept catalog with this key, if there is one."""
    root = cache_root()
    path = None if root is None else root / (key + SUFFIX)
    return path if path is not None and path.is_file() else None


def new_catalog(key: str | None) -> tuple[str, str | None]:
    """(a fresh path to build a catalog at, the path to publish it to; None: remove it once opened)."""
    root = cache_root() if key is not None else None
    fd, path = tempfile.mkstemp(prefix=".building-", suffix=SUFFIX, dir=root)
    os.close(fd)
    os.remove(path)  # DuckDB creates it; an empty file is not a database
    return path, None if root is None else str(root / (key + SUFFIX))


def publish(built: str, final: str) -> None:
    """Move a built catalog to its kept path (atomic) and drop the oldest entries beyond MAX_ENTRIES."""
    os.replace(built, final)
    entries = []
    for p in Path(final).parent.glob("*" + SUFFIX):
        try:
            st = p.stat()
        except FileNotFoundError:  # removed by another command meanwhile
            continue
        if not p.name.startswith("."):
            entries.append((st.st_mtime_ns, st.st_size, p))
        elif st.st_mtime_ns < (os.path.getmtime(final) - 3600) * 1e9:  # a build its command never finished
            p.unlink(missing_ok=True)
    total = 0
    for i, (_, size, p) in enumerate(sorted(entries, reverse=True)):  # newest first; the newest always stays
        total += size
        if i and (i >= MAX_ENTRIES or total > MAX_BYTES):
            p.unlink(missing_ok=True)
