"""Which Parquet files of a study's table can be read: the only listing every reader goes through.

A file whose footer does not read (torn, zero bytes, not Parquet) or whose columns contradict the schema
is skipped with an `UnreadableFileWarning` naming it (also printed to stderr): never a crash, never a
silent omission. Temporary files (leading '.' or '_') are not published yet and are not listed.
"""

from __future__ import annotations

import functools
import sys
import warnings
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from workers.store.layout import StudyLocation
from workers.store.schema import TABLES, compatible

if TYPE_CHECKING:
    import pyarrow.dataset as pads


class UnreadableFileWarning(UserWarning):
    """A Parquet file of the store could not be read and was left out of every view."""


Partition = tuple[str, str]  # (dataset, model)


def listed_files(loc: StudyLocation, table: str, partition: Partition | None = None) -> list[pafs.FileInfo]:
    """Published Parquet files of `table` (or of one (dataset, model) partition) in a study, sorted by
    path, with their size and modification time."""
    where = f"{loc.path}/{table}" + (f"/dataset={partition[0]}/model={partition[1]}" if partition else "")
    sel = pafs.FileSelector(where, recursive=True, allow_not_found=True)
    return sorted((i for i in loc.fs.get_file_info(sel)
                   if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
                   and not i.base_name.startswith((".", "_"))), key=lambda i: i.path)


def parquet_files(loc: StudyLocation, table: str, partition: Partition | None = None) -> list[str]:
    """Published Parquet files of `table` (or of one (dataset, model) partition) in a study, sorted."""
    return [i.path for i in listed_files(loc, table, partition)]


Columns = tuple[tuple[str, str], ...]  # a file's (column name, Arrow type) pairs, in file order


def read_columns(fs: pafs.FileSystem, path: str, schema: pa.Schema) -> Columns | str:
    """The file's (name, type) columns if its footer reads and its columns fit `schema`; otherwise why not
    (a str)."""
    try:
        file_schema = pq.read_schema(path, filesystem=fs)
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported, not raised
        return f"{type(e).__name__}: {e}"
    return _fit(file_schema, schema)


@functools.lru_cache(maxsize=256)  # a store's files share a handful of schemas: check each schema once
def _fit(file_schema: pa.Schema, schema: pa.Schema) -> Columns | str:
    want = dict(zip(schema.names, schema.types, strict=True))
    for f in file_schema:
        if f.name in want and not compatible(f.type, want[f.name]):
            return f"column {f.name!r} has type {f.type}, schema v1 says {want[f.name]}"
    return tuple((f.name, str(f.type)) for f in file_schema)


def warn_unreadable(path: str, reason: str) -> None:
    msg = f"skipping unreadable Parquet file {path}: {reason}"
    warnings.warn(msg, UnreadableFileWarning, stacklevel=3)
    print(f"warning: {msg}", file=sys.stderr)


def sort_files(loc: StudyLocation, table: str,
               paths: list[str]) -> tuple[list[tuple[str, Columns]], list[tuple[str, str]]]:
    """The given files of `table` split into (path, columns) of the readable ones and (path, why) of the
    others (no warning: see `scan_files`)."""
    good, bad = [], []
    for f in paths:
        cols = read_columns(loc.fs, f, TABLES[table])
        if isinstance(cols, str):
            bad.append((f, cols))
        else:
            good.append((f, cols))
    return good, bad


def scan_files(loc: StudyLocation, table: str, partition: Partition | None = None) -> list[tuple[str, Columns]]:
    """(path, columns) of every readable Parquet file of `table` in one study; every other file is
    warned about and skipped."""
    good, bad = sort_files(loc, table, parquet_files(loc, table, partition))
    for f, why in bad:
        warn_unreadable(loc.display(f), why)
    return good


def readable_files(loc: StudyLocation, table: str, partition: Partition | None = None) -> list[str]:
    """The readable Parquet files of `table` in one study (see `scan_files`)."""
    return [f for f, _ in scan_files(loc, table, partition)]


def open_dataset(locs: list[StudyLocation], table: str, partition: Partition | None = None) -> pads.Dataset:
    """One pyarrow dataset over the readable files of `table` in all `locs`, with the schema v1 (columns a
    file lacks read as null). (pyarrow.dataset imports pandas: imported here, when a remote store needs it.)"""
    import pyarrow.dataset as pads

    schema = TABLES[table]
    children = []
    for loc in locs:
        good = readable_files(loc, table, partition)
        if good:
            children.append(pads.dataset(good, schema=schema, format="parquet", filesystem=loc.fs))
    if not children:
        return pads.dataset(schema.empty_table())
    return children[0] if len(children) == 1 else pads.dataset(children)
