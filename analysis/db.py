"""Read-only DuckDB over a study's Parquet store (design.md §7–8).

`connect(path, study=None)` opens every checkpoint and trace file of one or more studies (local paths or
pyarrow filesystem URIs such as `s3://bucket/prefix?endpoint_override=127.0.0.1:9000&scheme=http`) and
returns a DuckDB connection with these views:

    checkpoints_raw  every row of every readable checkpoint file, duplicates included
    checkpoints      one row per (study, run_key, epoch): the latest `written_at`, then the highest `attempt`
    runs             one row per restart at its last recorded checkpoint (+ `n_checkpoints`)
    groups           one row per (study, config_key, epoch): restart counts and mean/std of the main metrics
    trace            training-time series, one row per (study, run_key, step), deduplicated the same way

Files are read through pyarrow datasets with the schema v1 of `workers.sink` (columns a file lacks are
null), so local and object storage behave identically. A truncated or corrupt file is skipped with an
`UnreadableFileWarning` naming it (also printed to stderr): never a crash, never a silent omission.

The connection is read-only: the view catalog is a database file opened in read-only mode, and external
access (COPY TO, ATTACH, reading or writing arbitrary files) is disabled and locked. Any statement that
would write or delete fails; `check_read_only(sql)` gives the CLI a clear message before execution.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from workers.sink import CHECKPOINT_SCHEMA, TRACE_SCHEMA, filesystem, join_uri


class UnreadableFileWarning(UserWarning):
    """A Parquet file of the store could not be read and was left out of every view."""


class ReadOnlyError(PermissionError):
    """A statement that would write or delete was given to the read-only analysis connection."""


MAIN_METRICS = ("dto", "dto_active", "mig", "ds", "recon", "kl", "active_units")

# view name -> (SQL, one-line description); the raw tables are registered as _raw_checkpoints, _raw_trace
# Deduplication keeps the latest write per key. The views as documented use a window (`_DEDUP`); at
# connect time `_dedup_plan` replaces it by an equivalent plan for the snapshot of files being read
# (raw rows when no key is written twice; an anti-join of the superseded rows otherwise), ~4x faster.
_DEDUP = ("SELECT * FROM _raw_{table} QUALIFY row_number() OVER (PARTITION BY study, run_key, {key} "
          "ORDER BY written_at DESC, attempt DESC) = 1")
DEDUP_KEYS = {"checkpoints": "epoch", "trace": "step"}
_GROUP_METRICS = ",\n       ".join(
    f"avg({m}) AS {m}_mean, stddev_samp({m}) AS {m}_std" for m in MAIN_METRICS
)
VIEWS: dict[str, tuple[str, str]] = {
    "checkpoints_raw": (
        "SELECT * FROM _raw_checkpoints",
        "every row of every readable checkpoint file, at-least-once duplicates included",
    ),
    "checkpoints": (
        _DEDUP.format(table="checkpoints", key="epoch"),
        "one row per (study, run_key, epoch): the latest written_at wins, then the highest attempt",
    ),
    "runs": (  # a hash aggregate and a join: no window over all columns
        "SELECT c.*, k.n_checkpoints FROM checkpoints AS c JOIN (SELECT study, run_key, max(epoch) AS epoch, "
        "count(*) AS n_checkpoints FROM checkpoints GROUP BY study, run_key) AS k "
        "ON c.study = k.study AND c.run_key = k.run_key AND c.epoch = k.epoch",
        "one row per restart (study, run_key) at its last recorded checkpoint; n_checkpoints = rows so far",
    ),
    "groups": (
        "SELECT study, dataset, model, config_key, any_value(arch) AS arch, any_value(latent_dim) AS latent_dim,\n"
        "       any_value(hparams) AS hparams, any_value(beta) AS beta, epoch,\n"
        "       count(*) AS n, count(*) FILTER (WHERE status = 'ok') AS n_ok,\n"
        "       count(*) FILTER (WHERE status = 'diverged') AS n_diverged,\n"
        "       count(*) FILTER (WHERE status = 'failed') AS n_failed,\n"
        f"       {_GROUP_METRICS}\n"
        "FROM checkpoints GROUP BY study, dataset, model, config_key, epoch",
        "one row per (study, config_key, epoch): restart counts by status, mean/std of "
        + ", ".join(MAIN_METRICS) + " (status ok and failed rows alike; filter checkpoints for finer control)",
    ),
    "trace": (
        _DEDUP.format(table="trace", key="step"),
        "training-time series, one row per (study, run_key, step), deduplicated like checkpoints",
    ),
}


@dataclass(frozen=True)
class StudyLocation:
    """One study folder: its filesystem, the path inside it and the URI as the user can reuse it."""

    fs: pafs.FileSystem
    path: str
    uri: str

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


def _is_study_dir(fs: pafs.FileSystem, path: str) -> bool:
    infos = fs.get_file_info([f"{path}/study.yaml", f"{path}/checkpoints"])
    return any(i.type != pafs.FileType.NotFound for i in infos)


def resolve_studies(path: str, study: str | Iterable[str] | None = None) -> list[StudyLocation]:
    """Study folders named by `path` (a study folder, or a storage root) and `study` (name or names).

    A storage root without `study` means every study folder directly under it. Raises FileNotFoundError
    naming what was looked for when nothing matches.
    """
    names = [study] if isinstance(study, str) else list(study or [])
    fs, base = filesystem(path)
    if names:
        locs = [StudyLocation(fs, f"{base}/{n}", join_uri(path, n)) for n in names]
        missing = [loc.uri for loc in locs if not _is_study_dir(fs, loc.path)]
        if missing:
            raise FileNotFoundError(f"no study folder (study.yaml or checkpoints/) at {', '.join(missing)}")
        return locs
    info = fs.get_file_info(base)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{path!r} does not exist; give a study folder (<storage>/<study>) or a storage root")
    if _is_study_dir(fs, base):
        return [StudyLocation(fs, base, path)]
    subdirs = [i for i in fs.get_file_info(pafs.FileSelector(base)) if i.type == pafs.FileType.Directory]
    locs = [StudyLocation(fs, i.path, join_uri(path, i.base_name)) for i in sorted(subdirs, key=lambda i: i.path)
            if _is_study_dir(fs, i.path)]
    if not locs:
        raise FileNotFoundError(f"{path!r} is neither a study folder (no study.yaml or checkpoints/) nor a storage "
                                "root holding study folders")
    return locs


def parquet_files(loc: StudyLocation, table: str) -> list[str]:
    """Published Parquet files of `table` in a study (temporary `.name.tmp` files excluded), sorted."""
    info = loc.fs.get_file_info(f"{loc.path}/{table}")
    if info.type == pafs.FileType.NotFound:
        return []
    sel = pafs.FileSelector(f"{loc.path}/{table}", recursive=True)
    return sorted(i.path for i in loc.fs.get_file_info(sel)
                  if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
                  and not i.base_name.startswith((".", "_")))


def _readable(fs: pafs.FileSystem, path: str, schema: pa.Schema) -> str | None:
    """None if the file's footer reads and its columns fit `schema`; otherwise why not."""
    try:
        file_schema = pq.read_schema(path, filesystem=fs)
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported, not raised
        return f"{type(e).__name__}: {e}"
    for f in file_schema:
        if f.name in schema.names and not _compatible(f.type, schema.field(f.name).type):
            return f"column {f.name!r} has type {f.type}, schema v1 says {schema.field(f.name).type}"
    return None


def _compatible(got: pa.DataType, want: pa.DataType) -> bool:
    if got == want or pa.types.is_null(got):
        return True
    if pa.types.is_timestamp(got) and pa.types.is_timestamp(want):
        return True
    return pa.types.is_integer(got) and (pa.types.is_integer(want) or pa.types.is_floating(want))


def warn_unreadable(path: str, reason: str) -> None:
    msg = f"skipping unreadable Parquet file {path}: {reason}"
    warnings.warn(msg, UnreadableFileWarning, stacklevel=3)
    print(f"warning: {msg}", file=sys.stderr)


def open_dataset(locs: list[StudyLocation], table: str) -> pads.Dataset:
    """One pyarrow dataset over the readable files of `table` in all `locs` (schema v1; unreadable skipped)."""
    schema = {"checkpoints": CHECKPOINT_SCHEMA, "trace": TRACE_SCHEMA}[table]
    children = []
    for loc in locs:
        good = []
        for f in parquet_files(loc, table):
            why = _readable(loc.fs, f, schema)
            if why is None:
                good.append(f)
            else:
                warn_unreadable(f if isinstance(loc.fs, pafs.LocalFileSystem) else f"{loc.fs.type_name}://{f}", why)
        if good:
            children.append(pads.dataset(good, schema=schema, format="parquet", filesystem=loc.fs))
    if not children:
        return pads.dataset(schema.empty_table())
    return children[0] if len(children) == 1 else pads.dataset(children)


def connect(path: str, study: str | Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
    """Read-only DuckDB connection with the views of this module over one or more studies.

    path: a study folder `<storage>/<study>` (local or URI), or a storage root; study: a name or names of
    studies under that root (None: the folder itself, or every study under the root).
    """
    return views_connection(resolve_studies(path, study))


def _dedup_plan(con: duckdb.DuckDBPyConnection, table: str, key: str) -> tuple[str, dict[str, pa.Table]]:
    """SQL of the deduplicated `table` view for this snapshot of files, plus small tables it needs.

    No key written twice: the raw rows. Otherwise the superseded rows are identified once here (narrow
    columns, duplicated keys only) and removed by an anti-join, so queries scan the rows once. Keys whose
    winning row exists in identical copies (same written_at and attempt, e.g. a compaction's output next
    to its sources) cannot be told apart that way: those keys alone go through the window.
    """
    k = f"study, run_key, {key}"
    dups = con.sql(f"SELECT {k} FROM _raw_{table} GROUP BY ALL HAVING count(*) > 1").to_arrow_table()
    if dups.num_rows == 0:
        return f"SELECT * FROM _raw_{table}", {}
    con.register("_dups", dups)
    ranked = (f"SELECT {k}, written_at, coalesce(attempt, -1) AS attempt_k, row_number() OVER w AS rn, "
              f"count(*) OVER (PARTITION BY {k}, written_at, coalesce(attempt, -1)) AS copies "
              f"FROM _raw_{table} SEMI JOIN _dups USING ({k}) "
              f"WINDOW w AS (PARTITION BY {k} ORDER BY written_at DESC, attempt DESC)")
    con.execute(f"CREATE TEMP TABLE _ranked AS {ranked}")
    losers = con.sql(f"SELECT DISTINCT l.study, l.run_key, l.{key}, l.written_at, l.attempt_k FROM _ranked l "
                     f"JOIN _ranked w ON w.rn = 1 AND l.study = w.study AND l.run_key = w.run_key "
                     f"AND l.{key} = w.{key} WHERE l.rn > 1 AND NOT (l.written_at = w.written_at "
                     f"AND l.attempt_k = w.attempt_k)").to_arrow_table()
    exact = con.sql(f"SELECT {k} FROM _ranked WHERE rn = 1 AND copies > 1").to_arrow_table()
    con.execute("DROP TABLE _ranked")
    con.unregister("_dups")
    keep = (f"SELECT * FROM _raw_{table} AS r ANTI JOIN _losers_{table} AS l ON r.study = l.study "
            f"AND r.run_key = l.run_key AND r.{key} = l.{key} AND r.written_at = l.written_at "
            f"AND coalesce(r.attempt, -1) = l.attempt_k")
    extra = {f"_losers_{table}": losers}
    if exact.num_rows:
        extra[f"_exact_{table}"] = exact
        keep = (f"SELECT * FROM ({keep}) ANTI JOIN _exact_{table} USING ({k}) UNION ALL "
                f"SELECT * FROM (SELECT * FROM _raw_{table} SEMI JOIN _exact_{table} USING ({k})) "
                f"QUALIFY row_number() OVER (PARTITION BY {k} ORDER BY written_at DESC, attempt DESC) = 1")
    return keep, extra


def views_connection(locs: list[StudyLocation]) -> duckdb.DuckDBPyConnection:
    """The read-only connection with every view over the given study folders (none: empty views)."""
    raw = {"_raw_checkpoints": open_dataset(locs, "checkpoints"), "_raw_trace": open_dataset(locs, "trace")}
    fd, catalog = tempfile.mkstemp(prefix="orthosweep-views-", suffix=".duckdb")
    os.close(fd)
    os.remove(catalog)  # DuckDB creates it; an empty file is not a database
    try:
        writer = duckdb.connect(catalog)
        for name, ds in raw.items():
            writer.register(name, ds)
        dedup = {}
        for table, key in DEDUP_KEYS.items():
            dedup[table], extra = _dedup_plan(writer, table, key)
            for name, tbl in extra.items():
                raw[name] = tbl
                writer.register(name, tbl)
        for name, (sql, _) in VIEWS.items():
            writer.execute(f"CREATE VIEW {name} AS {dedup.get(name, sql)}")
        writer.close()
        con = duckdb.connect(catalog, read_only=True)
    finally:
        for p in (catalog, catalog + ".wal"):
            if os.path.exists(p):
                os.remove(p)  # the open connection keeps its handle; nothing is left behind
    for name, ds in raw.items():
        con.register(name, ds)
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


# Statement types that only read. Anything else (INSERT, UPDATE, DELETE, CREATE, DROP, COPY, ATTACH,
# EXPORT, SET, ...) is refused by `check_read_only` with a message naming it.
_READ_TYPES = {"SELECT", "EXPLAIN", "PRAGMA"}


def check_read_only(sql: str) -> None:
    """Raise ReadOnlyError if any statement in `sql` is not a query (checked before execution)."""
    for stmt in duckdb.extract_statements(sql):
        kind = stmt.type.name
        if kind not in _READ_TYPES:
            text = stmt.query.strip().splitlines()[0][:80]
            raise ReadOnlyError(
                f"refused {kind} statement {text!r}: the analysis connection is read-only (the Parquet store is "
                "written only by the training workers); use SELECT, and --out FILE to save a result"
            )


def view_columns(con: duckdb.DuckDBPyConnection, view: str) -> list[tuple[str, str]]:
    """(column name, DuckDB type) of a view."""
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {view}").fetchall()]


def read_study_yaml(path: str) -> str | None:
    """The normalised `study.yaml` text of a study folder, or None when absent (or `path` holds several)."""
    locs = resolve_studies(path)
    if len(locs) != 1:
        return None
    loc = locs[0]
    try:
        with loc.fs.open_input_stream(f"{loc.path}/study.yaml") as fh:
            return fh.read().decode("utf-8")
    except (FileNotFoundError, OSError):
        return None


def write_bytes(uri: str, data: bytes) -> str:
    """Write `data` to a local path or URI (parents created); returns the path written."""
    fs, p = filesystem(uri)
    fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(p) as fh:
        fh.write(data)
    return p
