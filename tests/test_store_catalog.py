"""Kept view catalogs (workers.store.catalog): a kept catalog must read exactly what a new one would.

Each case compares a connection that may open a kept catalog with what the files say: new files, removed
files, a damaged or vanished kept catalog, an unwritable cache, and the warnings for unreadable files,
which a kept catalog must repeat.
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from pathlib import Path

import pytest

from testing.synthetic_store import checkpoint_row
from workers.store import catalog
from workers.store.files import UnreadableFileWarning
from workers.store.views import connect
from workers.store.write import write_rows

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORTHOSWEEP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "catalogs"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    study = tmp_path / "res" / "kept"
    study.mkdir(parents=True)
    (study / "study.yaml").write_text("study: kept\n")
    write_rows(str(study), "checkpoints", [checkpoint_row(f"r{s}", 10, seed=s, dto=float(s), written_at=T0)
                                           for s in range(3)])
    return study


def _count(store: Path) -> tuple[int, float]:
    return connect(str(store)).execute("SELECT count(*), sum(dto) FROM runs").fetchone()


def _kept(cache: Path) -> list[Path]:
    return sorted(p for p in cache.glob("*.duckdb") if not p.name.startswith("."))


def test_a_second_connection_opens_the_kept_catalog_and_reads_the_same(store: Path, cache: Path) -> None:
    assert _count(store) == (3, 3.0)
    kept = _kept(cache)
    assert len(kept) == 1
    before = kept[0].stat().st_mtime_ns
    assert _count(store) == (3, 3.0)
    assert _kept(cache) == kept and kept[0].stat().st_mtime_ns == before  # opened, not rebuilt


def test_new_and_removed_files_are_read_at_once(store: Path, cache: Path) -> None:
    assert _count(store) == (3, 3.0)
    write_rows(str(store), "checkpoints", [checkpoint_row("r9", 10, seed=9, dto=9.0, written_at=T0)])
    assert _count(store) == (4, 12.0)
    newest = max(store.glob("checkpoints/*/*/*.parquet"), key=os.path.getmtime)
    newest.unlink()
    assert _count(store) == (3, 3.0)
    # a later write of an existing key supersedes it in a kept catalog's place too
    write_rows(str(store), "checkpoints", [checkpoint_row("r1", 10, seed=1, dto=100.0,
                                                          written_at=T0 + dt.timedelta(seconds=5))])
    assert _count(store) == (3, 102.0)


def test_a_kept_catalog_repeats_the_warnings_for_unreadable_files(store: Path, cache: Path) -> None:
    torn = store / "checkpoints" / "dataset=synth_lin" / "model=beta_vae" / "zz-torn.parquet"
    torn.write_bytes(b"PAR1\0\0")
    for _ in range(2):  # built, then kept
        with pytest.warns(UnreadableFileWarning, match="zz-torn.parquet"):
            assert _count(store) == (3, 3.0)
    assert len(_kept(cache)) == 1


def test_a_damaged_or_vanished_kept_catalog_is_built_again(store: Path, cache: Path) -> None:
    assert _count(store) == (3, 3.0)
    (kept,) = _kept(cache)
    kept.write_bytes(b"not a database")
    assert _count(store) == (3, 3.0)
    (kept,) = _kept(cache)
    kept.unlink()
    assert _count(store) == (3, 3.0)
    assert len(_kept(cache)) == 1


def test_without_a_writable_cache_nothing_is_kept_or_left_behind(store: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ORTHOSWEEP_CACHE", str(blocker))  # catalogs/ cannot be made under a file
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    assert catalog.cache_root() is None
    assert _count(store) == (3, 3.0)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_old_entries_beyond_the_limit_are_removed(store: Path, cache: Path, monkeypatch) -> None:
    monkeypatch.setattr(catalog, "MAX_ENTRIES", 2)
    for s in range(4):  # every new file is a new snapshot, so a new entry
        write_rows(str(store), "checkpoints", [checkpoint_row(f"n{s}", 10, seed=10 + s, written_at=T0)])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _count(store)
    assert len(_kept(cache)) == 2


def test_a_new_catalog_reads_only_the_footers_of_new_or_changed_files(store: Path, cache: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from workers.store import files

    read: list[str] = []
    real = files.read_columns
    monkeypatch.setattr(files, "read_columns", lambda fs, path, schema: read.append(path) or real(fs, path, schema))
    torn = store / "checkpoints" / "dataset=synth_lin" / "model=beta_vae" / "zz-torn.parquet"
    torn.write_bytes(b"PAR1\0\0")
    with pytest.warns(UnreadableFileWarning):
        assert _count(store) == (3, 3.0)
    assert len(read) == 2  # the sink's file and the torn one
    read.clear()
    write_rows(str(store), "checkpoints", [checkpoint_row("r9", 10, seed=9, dto=9.0, written_at=T0)])
    with pytest.warns(UnreadableFileWarning, match="zz-torn"):  # its verdict is reused, and still said
        assert _count(store) == (4, 12.0)
    assert len(read) == 1 and "zz-torn" not in read[0]  # only the new file
    read.clear()
    torn.write_bytes(b"PAR1\0\0\0")  # changed (size): read again
    with pytest.warns(UnreadableFileWarning, match="zz-torn"):
        assert _count(store) == (4, 12.0)
    assert [Path(p).name for p in read] == ["zz-torn.parquet"]


def test_the_kept_catalogs_stay_within_the_byte_limit(store: Path, cache: Path, monkeypatch) -> None:
    _count(store)
    (first,) = _kept(cache)
    monkeypatch.setattr(catalog, "MAX_BYTES", first.stat().st_size + 1)  # room for one entry only
    for s in range(2):
        write_rows(str(store), "checkpoints", [checkpoint_row(f"b{s}", 10, seed=20 + s, written_at=T0)])
        assert _count(store)[0] == 4 + s
    (kept,) = _kept(cache)  # the newest, whatever its size
    assert kept != first
