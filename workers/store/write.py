"""Atomic Parquet writes: the sink every writer of the store appends rows through (design.md §7).

Writes are at-least-once: a Ray retry may re-emit a checkpoint or an evaluation. Readers deduplicate by
keeping, per key (`schema.DEDUP_KEYS`), the row with the latest `written_at` (then the highest `attempt`);
see `views`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import socket
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from workers.store.layout import filesystem
from workers.store.schema import EVAL_STATUSES, SCHEMA_VERSION, STATUSES, TABLES


@functools.cache
def code_version() -> str:
    """Package version plus a hash of the package sources: identifies the code that wrote a row."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("orthosweep")
    except PackageNotFoundError:
        v = "0+unknown"
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for pkg in ("sweep", "workers", "analysis"):
        for f in sorted((root / pkg).rglob("*.py")):
            h.update(f.read_bytes())
    return f"{v}+{h.hexdigest()[:10]}"


def _complete(row: dict[str, Any], schema: pa.Schema) -> dict[str, Any]:
    unknown = set(row) - set(schema.names)
    if unknown:
        raise KeyError(f"columns not in schema v{SCHEMA_VERSION}: {sorted(unknown)}")
    out = {name: row.get(name) for name in schema.names}
    out["schema_version"] = SCHEMA_VERSION
    return out


def to_table(rows: list[dict[str, Any]], table: str) -> pa.Table:
    """Rows (dicts with a subset of the schema's columns; missing = null) as an Arrow table of `table`."""
    schema = TABLES[table]
    now = dt.datetime.fromtimestamp(time.time(), tz=dt.UTC)
    full = []
    for r in rows:
        r = _complete(r, schema)
        if r.get("written_at") is None:
            r["written_at"] = now
        if table in ("checkpoints", "evaluations"):
            allowed = STATUSES if table == "checkpoints" else EVAL_STATUSES
            if r["status"] not in allowed:
                raise ValueError(f"{table} status must be one of {allowed}, got {r['status']!r}")
            r["host"] = r["host"] or socket.gethostname()
            r["code_version"] = r["code_version"] or code_version()
        if table == "checkpoints":
            if isinstance(r["hparams"], dict):
                r["hparams"] = json.dumps(r["hparams"], sort_keys=True)
            if isinstance(r["config"], dict):
                r["config"] = json.dumps(r["config"], sort_keys=True)
        r["attempt"] = r["attempt"] or 0
        full.append(r)
    return pa.Table.from_pylist(full, schema=schema)


def write_rows(study_uri: str, table: str, rows: list[dict[str, Any]]) -> list[str]:
    """Append rows to `<study_uri>/<table>/dataset=../model=../` atomically; returns the files written.

    One file per (dataset, model) partition present in `rows`. A reader never sees a partial file: local
    files are written under a temporary name and renamed; object stores publish a PUT atomically.
    """
    if not rows:
        return []
    fs, base = filesystem(study_uri)
    parts: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        parts[(r["dataset"], r["model"])].append(r)
    written = []
    for (d, m), part_rows in parts.items():
        tbl = to_table(part_rows, table)
        directory = f"{base}/{table}/dataset={d}/model={m}"
        written.append(write_table_atomic(fs, directory, new_file_name(), tbl))
    return written


def new_file_name(suffix: str = "") -> str:
    """A Parquet file name unique across processes and hosts, ordered by creation time."""
    return f"{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}.parquet"


def write_table_atomic(fs: pafs.FileSystem, directory: str, name: str, tbl: pa.Table) -> str:
    """Write `tbl` as `directory/name` so that no reader ever sees a torn file."""
    fs.create_dir(directory, recursive=True)
    final = f"{directory}/{name}"
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{directory}/.{name}.tmp"
        pq.write_table(tbl, tmp, filesystem=fs)
        with open(tmp, "rb+") as fh:  # durable before it becomes visible
            os.fsync(fh.fileno())
        fs.move(tmp, final)
    else:
        pq.write_table(tbl, final, filesystem=fs)
    return final
