"""The read-only DuckDB views over a study's Parquet store: the one reader of the store (design.md §7–8).

`connect(path, study=None)` opens every readable checkpoint and trace file of one or more studies (local
paths or pyarrow filesystem URIs such as `s3://bucket/prefix?endpoint_override=127.0.0.1:9000&scheme=http`)
and returns a DuckDB connection with these views:

    checkpoints_raw  every row of every readable checkpoint file, duplicates included
    trained          one row per (study, run_key, epoch) as training wrote it: the latest `written_at`,
                     then the highest `attempt`
    evaluations_raw  every row of the evaluation stage (one per run_key, epoch, metric), duplicates included
    evaluations      one row per (study, run_key, epoch, metric): the latest evaluation of that metric
    checkpoints      `trained` with the evaluations merged in: still one row per (study, run_key, epoch)
    runs             one row per restart at its last recorded checkpoint (+ `n_checkpoints`)
    groups           one row per (study, config_key, epoch): restart counts and mean/std of the main metrics
    trace            training-time series, one row per (study, run_key, step), deduplicated the same way

How evaluations merge into `checkpoints` is `MERGE_RULE` below (printed by `orthosweep views`).

Files are listed by `workers.store.files` (unreadable ones skipped with a warning naming them) and read
with the schema v1 (columns a file lacks are null, narrower integer columns are widened), so local and
object storage give the same rows: local files through DuckDB's own Parquet reader (allowed file by file),
object stores through a pyarrow dataset on the store's filesystem.

The connection is read-only: the view catalog is a database file opened in read-only mode, and external
access (COPY TO, ATTACH, reading or writing arbitrary files) is disabled and locked. Any statement that
would write or delete fails; `check_read_only(sql)` gives the CLI a clear message before execution.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs

from workers.metrics.registry import METRICS
from workers.store.files import Partition, open_dataset, scan_files
from workers.store.layout import StudyLocation, resolve_studies
from workers.store.schema import DEDUP_KEYS, TABLES

MERGE_RULE = (
    "A metric's columns in `checkpoints` come from the latest evaluation of that metric for the (run_key, "
    "epoch) if it was written after the training row, otherwise from the training row (computed inline, or "
    "null). A retrained checkpoint (new weights) hides older evaluations until the metric is evaluated again. "
    "`evaluated` lists the metrics whose values the row holds; a failed evaluation adds '<metric>: <error>' "
    "to `error` and leaves its columns null. History: checkpoints_raw, evaluations_raw.")


class ReadOnlyError(PermissionError):
    """A statement that would write or delete was given to the read-only analysis connection."""


MAIN_METRICS = ("dto", "dto_active", "mig", "ds", "recon", "kl", "active_units")

# view name -> (SQL, one-line description); the raw tables are registered as _raw_checkpoints, _raw_trace
# Deduplication keeps the latest write per key. The views as documented use a window (`_DEDUP`); at
# connect time `_dedup_plan` replaces it by an equivalent plan for the snapshot of files being read
# (raw rows when no key is written twice; an anti-join of the superseded rows otherwise), ~4x faster.
_DEDUP = ("SELECT * FROM _raw_{table} QUALIFY row_number() OVER (PARTITION BY study, run_key, {key} "
          "ORDER BY written_at DESC, attempt DESC) = 1")
_MERGED = "SELECT * FROM trained"  # replaced at connect time by `_merge_plan` when evaluations exist
_GROUP_METRICS = ",\n       ".join(
    f"avg({m}) AS {m}_mean, stddev_samp({m}) AS {m}_std" for m in MAIN_METRICS
)
_DEDUP_VIEW = {"checkpoints": "trained", "trace": "trace", "evaluations": "evaluations"}
VIEWS: dict[str, tuple[str, str]] = {
    "checkpoints_raw": (
        "SELECT * FROM _raw_checkpoints",
        "every row of every readable checkpoint file, at-least-once duplicates included",
    ),
    "trained": (
        _DEDUP.format(table="checkpoints", key="epoch"),
        "one row per (study, run_key, epoch) as training wrote it: the latest written_at wins, then the "
        "highest attempt",
    ),
    "evaluations_raw": (
        "SELECT * FROM _raw_evaluations",
        "every evaluation-stage row (one per run_key, epoch, metric), re-evaluations included",
    ),
    "evaluations": (
        _DEDUP.format(table="evaluations", key="epoch, metric"),
        "one row per (study, run_key, epoch, metric): the latest evaluation of that metric",
    ),
    "checkpoints": (
        _MERGED,
        "one row per (study, run_key, epoch): `trained` with each metric's latest evaluation merged in when "
        "it is newer than the training row (`evaluated` lists the metrics present)",
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


def connect(path: str, study: str | Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
    """Read-only DuckDB connection with the views of this module over one or more studies.

    path: a study folder `<storage>/<study>` (local or URI), or a storage root; study: a name or names of
    studies under that root (None: the folder itself, or every study under the root).
    """
    return views_connection(resolve_studies(path, study))


def _dedup_plan(con: duckdb.DuckDBPyConnection, table: str,
                keys: tuple[str, ...]) -> tuple[str, dict[str, pa.Table]]:
    """SQL of the deduplicated `table` view for this snapshot of files, plus small tables it needs.

    No key written twice: the raw rows. Otherwise the superseded rows are identified once here (narrow
    columns, duplicated keys only) and removed by an anti-join, so queries scan the rows once. Keys whose
    winning row exists in identical copies (same written_at and attempt, e.g. a compaction's output next
    to its sources) cannot be told apart that way: those keys alone go through the window.
    """
    k = ", ".join(("study", "run_key", *keys))
    on = lambda a, b: " AND ".join(f"{a}.{c} = {b}.{c}" for c in ("study", "run_key", *keys))  # noqa: E731
    dups = con.sql(f"SELECT {k} FROM _raw_{table} GROUP BY ALL HAVING count(*) > 1").to_arrow_table()
    if dups.num_rows == 0:
        return f"SELECT * FROM _raw_{table}", {}
    con.register("_dups", dups)
    ranked = (f"SELECT {k}, written_at, coalesce(attempt, -1) AS attempt_k, row_number() OVER w AS rn, "
              f"count(*) OVER (PARTITION BY {k}, written_at, coalesce(attempt, -1)) AS copies "
              f"FROM _raw_{table} SEMI JOIN _dups USING ({k}) "
              f"WINDOW w AS (PARTITION BY {k} ORDER BY written_at DESC, attempt DESC)")
    con.execute(f"CREATE TEMP TABLE _ranked AS {ranked}")
    cols = ", ".join(f"l.{c}" for c in ("study", "run_key", *keys))
    losers = con.sql(f"SELECT DISTINCT {cols}, l.written_at, l.attempt_k FROM _ranked l "
                     f"JOIN _ranked w ON w.rn = 1 AND {on('l', 'w')} WHERE l.rn > 1 AND NOT "
                     f"(l.written_at = w.written_at AND l.attempt_k = w.attempt_k)").to_arrow_table()
    exact = con.sql(f"SELECT {k} FROM _ranked WHERE rn = 1 AND copies > 1").to_arrow_table()
    con.execute("DROP TABLE _ranked")
    con.unregister("_dups")
    keep = (f"SELECT * FROM _raw_{table} AS r ANTI JOIN _losers_{table} AS l ON {on('r', 'l')} "
            f"AND r.written_at = l.written_at AND coalesce(r.attempt, -1) = l.attempt_k")
    extra = {f"_losers_{table}": losers}
    if exact.num_rows:
        extra[f"_exact_{table}"] = exact
        keep = (f"SELECT * FROM ({keep}) ANTI JOIN _exact_{table} USING ({k}) UNION ALL "
                f"SELECT * FROM (SELECT * FROM _raw_{table} SEMI JOIN _exact_{table} USING ({k})) "
                f"QUALIFY row_number() OVER (PARTITION BY {k} ORDER BY written_at DESC, attempt DESC) = 1")
    return keep, extra


def _merge_plan(con: duckdb.DuckDBPyConnection) -> str:
    """SQL of the `checkpoints` view: `trained` with the evaluations of the metrics present merged in
    (the rule in this module's docstring). Only metrics that have evaluations enter the plan."""
    present = [r[0] for r in con.execute("SELECT DISTINCT metric FROM _raw_evaluations WHERE metric IS NOT NULL "
                                         "ORDER BY metric").fetchall()]
    metrics = [METRICS[m] for m in present if m in METRICS]
    if not metrics:
        return _MERGED
    pivot, replace, listed, errors = [], [], [], []
    for m in metrics:
        at, err = _quoted(f"_at_{m.name}"), _quoted(f"_error_{m.name}")
        lit = "'" + m.name + "'"
        pivot.append(f"any_value(written_at) FILTER (WHERE metric = {lit}) AS {at}")
        pivot.append(f"any_value(error) FILTER (WHERE metric = {lit}) AS {err}")
        newer = f"e.{at} > t.written_at"
        for c in m.columns:
            pivot.append(f"any_value({_quoted(c)}) FILTER (WHERE metric = {lit}) AS {_quoted(c)}")
            replace.append(f"CASE WHEN {newer} THEN e.{_quoted(c)} ELSE t.{_quoted(c)} END AS {_quoted(c)}")
        listed.append(f"CASE WHEN {newer} AND e.{err} IS NULL THEN {lit} END")
        errors.append(f"CASE WHEN {newer} AND e.{err} IS NOT NULL THEN {lit} || ': ' || e.{err} END")
    superseded = ", ".join(f"CASE WHEN e.{_quoted('_at_' + m.name)} > t.written_at THEN '{m.name}' END"
                           for m in metrics)
    evaluated = (f"list_concat(list_filter(coalesce(t.evaluated, []::VARCHAR[]), lambda x: NOT list_contains("
                 f"[{superseded}], x)), list_filter([{', '.join(listed)}], lambda x: x IS NOT NULL)) AS evaluated")
    error = f"nullif(concat_ws('; ', t.error, {', '.join(errors)}), '') AS error"
    return (f"SELECT t.* REPLACE ({', '.join(replace)}, {evaluated}, {error}) FROM trained AS t "
            f"LEFT JOIN (SELECT study, run_key, epoch, {', '.join(pivot)} FROM evaluations "
            f"GROUP BY study, run_key, epoch) AS e USING (study, run_key, epoch)")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_list(t):
        return f"{_duck_type(t.value_type)}[]"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP WITH TIME ZONE" if t.tz else "TIMESTAMP"
    return {pa.int32(): "INTEGER", pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.string(): "VARCHAR"}[t]


def _local_source(locs: list[StudyLocation], table: str, partition: Partition | None) -> tuple[str, list[str]]:
    """(SELECT over the readable local files of `table` with the schema v1's columns and types, the files)."""
    scanned = [fc for loc in locs for fc in scan_files(loc, table, partition)]
    present = {c for _, cols in scanned for c in cols}
    select = ", ".join(f'CAST({_quoted(f.name) if f.name in present else "NULL"} AS {_duck_type(f.type)}) '
                       f"AS {_quoted(f.name)}" for f in TABLES[table])
    if not scanned:
        return f"SELECT {select} WHERE false", []
    files = [f for f, _ in scanned]
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    return f"SELECT {select} FROM read_parquet([{listed}], union_by_name = true, hive_partitioning = false)", files


def views_connection(locs: list[StudyLocation], partition: Partition | None = None) -> duckdb.DuckDBPyConnection:
    """The read-only connection with every view over the given study folders (none: empty views), or over
    one (dataset, model) partition of them."""
    local = all(isinstance(loc.fs, pafs.LocalFileSystem) for loc in locs)
    registered: dict[str, object] = {}
    sources: dict[str, str] = {}
    allowed: list[str] = []
    empty: set[str] = set()  # local tables without a readable file: nothing to deduplicate or merge
    for t in DEDUP_KEYS:
        if local:
            sources[t], files = _local_source(locs, t, partition)
            allowed += files
            if not files:
                empty.add(t)
        else:
            registered[f"_raw_{t}"] = open_dataset(locs, t, partition)
    fd, catalog = tempfile.mkstemp(prefix="orthosweep-views-", suffix=".duckdb")
    os.close(fd)
    os.remove(catalog)  # DuckDB creates it; an empty file is not a database
    try:
        writer = duckdb.connect(catalog)
        for name, ds in registered.items():
            writer.register(name, ds)
        for t, sql in sources.items():
            writer.execute(f"CREATE VIEW _raw_{t} AS {sql}")
        plans = {}
        for table, keys in DEDUP_KEYS.items():
            if table in empty:
                plans[_DEDUP_VIEW[table]] = f"SELECT * FROM _raw_{table}"
                continue
            plans[_DEDUP_VIEW[table]], extra = _dedup_plan(writer, table, keys)
            for name, tbl in extra.items():
                registered[name] = tbl
                writer.register(name, tbl)
        plans["checkpoints"] = _MERGED if "evaluations" in empty else _merge_plan(writer)
        for name, (sql, _) in VIEWS.items():
            writer.execute(f"CREATE VIEW {name} AS {plans.get(name, sql)}")
        writer.close()
        con = duckdb.connect(catalog, read_only=True)
    finally:
        for p in (catalog, catalog + ".wal"):
            if os.path.exists(p):
                os.remove(p)  # the open connection keeps its handle; nothing is left behind
    for name, ds in registered.items():
        con.register(name, ds)
    if allowed:  # exactly the store's readable files, nothing else, even with external access off
        con.execute("SET allowed_paths = $paths", {"paths": allowed})
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


