"""What the sweep driver reads from and writes to a study's store, besides the sink's rows (design.md §7).

The Parquet store decides completion: a restart is complete when a `checkpoints` row exists for
(run_key, epoch == epochs) with status `ok` or `diverged`. This module only reads rows (the columns the
driver needs, through pyarrow, for local paths and `s3://` alike); it also writes the small files the
driver owns: `study.yaml` (the normalised spec) and `tune/driver.json` (live state for `status`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import yaml

from workers.sink import filesystem, join_uri

DONE_STATUSES = ("ok", "diverged")
STATE_FILE = "tune/driver.json"


def list_parquet(study_uri: str, table: str = "checkpoints",
                 partition: tuple[str, str] | None = None) -> tuple[pafs.FileSystem, list[str]]:
    """(filesystem, visible Parquet files of `table`, or of one (dataset, model) partition), temporary files
    (leading '.') excluded."""
    fs, base = filesystem(study_uri)
    where = f"{base}/{table}" + (f"/dataset={partition[0]}/model={partition[1]}" if partition else "")
    selector = pafs.FileSelector(where, recursive=True, allow_not_found=True)
    files = [i.path for i in fs.get_file_info(selector)
             if i.type == pafs.FileType.File and i.path.endswith(".parquet")
             and not i.base_name.startswith((".", "_"))]
    return fs, sorted(files)


def read_rows(study_uri: str, columns: list[str], table: str = "checkpoints",
              partition: tuple[str, str] | None = None) -> pa.Table:
    """Every physical row of `table` (duplicates included), only `columns`; empty table if none."""
    fs, files = list_parquet(study_uri, table, partition)
    if not files:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    return pads.dataset(files, filesystem=fs, format="parquet").to_table(columns=columns)


@dataclass(frozen=True)
class RestartState:
    """The store's verdict on one restart: its latest final-epoch status and error, if any."""

    status: str  # ok | diverged | failed
    error: str | None


def final_states(study_uri: str, run_keys: Iterable[str] | None = None,
                 partition: tuple[str, str] | None = None) -> dict[str, RestartState]:
    """run_key -> state at its final epoch (`epoch == epochs`), deduplicated (latest write wins).

    A restart with any ok/diverged row at its final epoch counts as done even if a later `failed` row
    exists (the driver never writes `failed` over a finished restart; this only makes reads robust).
    """
    cols = ["run_key", "epoch", "epochs", "status", "error", "written_at", "attempt"]
    tbl = read_rows(study_uri, cols, partition=partition)
    wanted = set(run_keys) if run_keys is not None else None
    best: dict[str, tuple[Any, int, str, str | None]] = {}
    done: set[str] = set()
    if tbl.num_rows:
        data = tbl.to_pydict()
        for rk, ep, eps, st, err, at, att in zip(*(data[c] for c in cols), strict=True):
            if ep != eps or (wanted is not None and rk not in wanted):
                continue
            if st in DONE_STATUSES:
                done.add(rk)
            key = (at, att or 0)
            if rk not in best or key >= best[rk][:2]:
                best[rk] = (at, att or 0, st, err)
    out = {}
    for rk, (_, _, st, err) in best.items():
        if rk in done and st not in DONE_STATUSES:
            st, err = "ok", None
        out[rk] = RestartState(st, err)
    return out


def completed_run_keys(study_uri: str, run_keys: Iterable[str] | None = None,
                       partition: tuple[str, str] | None = None) -> set[str]:
    """Restarts whose final checkpoint is stored with status ok or diverged (never trained again)."""
    return {rk for rk, s in final_states(study_uri, run_keys, partition).items() if s.status in DONE_STATUSES}


# --------------------------------------------------------------------------------------------------
# Small driver-owned files
# --------------------------------------------------------------------------------------------------

def write_text(uri: str, text: str) -> None:
    """Write a small text file atomically (local: temporary name then rename; object stores: one PUT)."""
    fs, path = filesystem(uri)
    directory, _, name = path.rpartition("/")
    fs.create_dir(directory, recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{directory}/.{name}.tmp"
        with fs.open_output_stream(tmp) as out:
            out.write(text.encode())
        fs.move(tmp, path)
    else:
        with fs.open_output_stream(path) as out:
            out.write(text.encode())


def read_text(uri: str) -> str | None:
    """The file's text, or None if it does not exist."""
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read().decode()


def write_study_yaml(study_uri: str, normalized: dict[str, Any]) -> None:
    write_text(join_uri(study_uri, "study.yaml"), yaml.safe_dump(normalized, sort_keys=False))


def read_study_yaml(study_uri: str) -> dict[str, Any] | None:
    text = read_text(join_uri(study_uri, "study.yaml"))
    return None if text is None else yaml.safe_load(text)


def write_driver_state(study_uri: str, state: dict[str, Any]) -> None:
    write_text(join_uri(study_uri, STATE_FILE), json.dumps(state, sort_keys=True))


def read_driver_state(study_uri: str) -> dict[str, Any] | None:
    text = read_text(join_uri(study_uri, STATE_FILE))
    return None if text is None else json.loads(text)


def split_study_dir(study_dir: str) -> tuple[str, str]:
    """`<storage>/<study>` (path or URI, query kept on the storage) -> (storage, study name)."""
    root, sep, query = study_dir.partition("?")
    root = root.rstrip("/")
    parent, _, name = root.rpartition("/")
    if not name:
        raise ValueError(f"{study_dir!r} does not name a study folder (expected <storage>/<study>)")
    if not parent:
        parent = "."
    return parent + sep + query, name
