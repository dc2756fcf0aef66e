"""The Parquet sink: schema v1 of the store, defined once, and atomic writes (design.md §7).

Layout under `<storage>/<study>/`:
    study.yaml                                                 the normalised spec as submitted
    checkpoints/dataset=<d>/model=<m>/<file>.parquet           one row per (run_key, epoch)
    trace/dataset=<d>/model=<m>/<file>.parquet                 training-time series
    models/<run_key>/e<epoch>.pt                               state dicts (weights_only loadable)

Writes are at-least-once: a Ray retry may re-emit a checkpoint. Readers deduplicate by keeping, per
(run_key, epoch), the row with the latest `written_at` (then the highest `attempt`).
Local paths and any pyarrow filesystem URI (s3://...) go through the same code.
"""

from __future__ import annotations

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

SCHEMA_VERSION = 1

_f64, _i64, _str = pa.float64(), pa.int64(), pa.string()
_list_f64 = pa.list_(pa.float64())

# Metric columns: every key the metric functions of workers.metrics may return (null where not computed).
METRIC_COLUMNS: dict[str, pa.DataType] = {
    "dto": _f64, "dto_active": _f64, "c_ima": _f64,
    "ds": _f64, "ds_per_factor": _list_f64,
    "mig": _f64, "mig_per_factor": _list_f64, "mig_sup": _f64,
    "dci_disentanglement": _f64, "dci_completeness": _f64,
    "dci_informativeness_train": _f64, "dci_informativeness_test": _f64,
    "sap": _f64,
    "factorvae_train": _f64, "factorvae_eval": _f64, "factorvae_active_dims": _i64,
    "betavae_train": _f64, "betavae_eval": _f64,
    "kl_per_dim": _list_f64, "sigma2_per_dim": _list_f64,
    "active_units": _i64, "active_units_mu": _i64,
    "polarized_delta_kl": _f64, "polarized_fraction": _f64,
}

CHECKPOINT_SCHEMA = pa.schema([
    ("schema_version", pa.int32()),
    ("study", _str), ("run_key", _str), ("config_key", _str), ("trial_id", _str),
    ("dataset", _str), ("model", _str), ("arch", _str), ("latent_dim", _i64), ("seed", _i64),
    ("hparams", _str),  # JSON of the objective hyperparameters
    ("config", _str),  # JSON of the whole restart definition (what config_key hashes)
    ("beta", _f64),
    ("epoch", _i64), ("epochs", _i64), ("step", _i64),
    ("status", _str),  # ok | diverged | failed
    ("error", _str),
    ("wall_seconds", _f64), ("written_at", pa.timestamp("us", tz="UTC")), ("attempt", _i64),
    ("host", _str), ("code_version", _str),
    ("loss", _f64), ("recon", _f64), ("kl", _f64),  # on held-out data, per example (summed over dims)
    *METRIC_COLUMNS.items(),
])

TRACE_SCHEMA = pa.schema([
    ("schema_version", pa.int32()),
    ("study", _str), ("run_key", _str), ("config_key", _str), ("dataset", _str), ("model", _str),
    ("seed", _i64), ("step", _i64), ("epoch", _f64),
    ("loss", _f64), ("recon", _f64), ("kl", _f64), ("kl_active", _f64), ("delta_kl", _f64),
    ("active_units", _i64),
    ("written_at", pa.timestamp("us", tz="UTC")), ("attempt", _i64),
])

TABLES: dict[str, pa.Schema] = {"checkpoints": CHECKPOINT_SCHEMA, "trace": TRACE_SCHEMA}
STATUSES = ("ok", "diverged", "failed")


@functools.cache
def code_version() -> str:
    """Package version plus a hash of the package sources: identifies the code that wrote a row."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("orthosweep")
    except PackageNotFoundError:
        v = "0+unknown"
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for pkg in ("sweep", "workers", "analysis"):
        for f in sorted((root / pkg).rglob("*.py")):
            h.update(f.read_bytes())
    return f"{v}+{h.hexdigest()[:10]}"


def join_uri(base: str, *parts: str) -> str:
    """`base/part/...` for a local path or a URI whose query (`?endpoint_override=...`) stays at the end."""
    root, sep, query = base.partition("?")
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)]) + sep + query


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path inside it) for a local path or a URI such as s3://bucket/prefix."""
    if "://" in uri:
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), str(Path(uri).expanduser().absolute())


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
    now = time.time()
    full = []
    for r in rows:
        r = _complete(r, schema)
        if r.get("written_at") is None:
            r["written_at"] = _utc(now)
        if table == "checkpoints":
            if r["status"] not in STATUSES:
                raise ValueError(f"status must be one of {STATUSES}, got {r['status']!r}")
            r["host"] = r["host"] or socket.gethostname()
            r["code_version"] = r["code_version"] or code_version()
            if isinstance(r["hparams"], dict):
                r["hparams"] = json.dumps(r["hparams"], sort_keys=True)
            if isinstance(r["config"], dict):
                r["config"] = json.dumps(r["config"], sort_keys=True)
        r["attempt"] = r["attempt"] or 0
        full.append(r)
    return pa.Table.from_pylist(full, schema=schema)


def _utc(t: float) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, tz=dt.UTC)


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
        name = f"{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        written.append(write_table_atomic(fs, directory, name, tbl))
    return written


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
