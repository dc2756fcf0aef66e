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

The connection is read-only: the view catalog is a database file opened in read-only mode (kept and opened
again while the files are unchanged: workers.store.catalog), and external access (COPY TO, ATTACH, reading
or writing arbitrary files) is disabled and locked. Any statement that would write or delete fails;
`check_read_only(sql)` gives the CLI a clear message before execution. `views_connection(..., views=...)`
builds only the views asked for and those they read (`view_closure`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs

from workers.metrics.registry import METRICS
from workers.store import catalog
from workers.store.files import Columns, Partition, listed_files, open_dataset, sort_files, warn_unreadable
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


def _local_source(table: str, scanned: list[tuple[str, Columns]]) -> str:
    """SELECT over the readable local files `scanned` = [(path, columns)] of `table` with the schema v1's
    columns and types.

    Files with the same columns are read by one `read_parquet` and the groups joined by UNION ALL: DuckDB
    binds such a scan from one footer, where `union_by_name` would re-read every file's footer at each
    bind (every view creation and every query), ~0.1 ms per file each time."""
    groups: dict[Columns, list[str]] = {}
    for f, cols in scanned:
        groups.setdefault(cols, []).append(f)
    parts = []
    for cols, files in groups.items():
        present = {name for name, _ in cols}
        select = ", ".join(f'CAST({_quoted(f.name) if f.name in present else "NULL"} AS {_duck_type(f.type)}) '
                           f"AS {_quoted(f.name)}" for f in TABLES[table])
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        parts.append(f"SELECT {select} FROM read_parquet([{listed}], hive_partitioning = false)")
    if not parts:
        select = ", ".join(f"CAST(NULL AS {_duck_type(f.type)}) AS {_quoted(f.name)}" for f in TABLES[table])
        return f"SELECT {select} WHERE false"
    return " UNION ALL ".join(parts)


# What each view reads besides the raw tables: `views_connection(..., views=...)` builds the closure only.
_VIEW_NEEDS: dict[str, tuple[str, ...]] = {
    "checkpoints_raw": (), "trained": (), "evaluations_raw": (), "evaluations": (), "trace": (),
    "checkpoints": ("trained", "evaluations"), "runs": ("checkpoints",), "groups": ("checkpoints",),
}
_RAW_OF = {"checkpoints_raw": "checkpoints", "trained": "checkpoints", "evaluations_raw": "evaluations",
           "evaluations": "evaluations", "trace": "trace"}


def view_closure(views: Iterable[str]) -> list[str]:
    """`views` and every view they read, in the order of VIEWS (the order they can be created in)."""
    todo, seen = list(views), set()
    while todo:
        v = todo.pop()
        if v in VIEWS and v not in seen:
            seen.add(v)
            todo.extend(_VIEW_NEEDS[v])
    return [v for v in VIEWS if v in seen]


def views_named(sql: str) -> list[str]:
    """The views whose names occur as words in `sql` (a superset of those it reads: enough to build)."""
    words = set(re.findall(r"[a-z_][a-z0-9_]*", sql.lower()))
    return [v for v in VIEWS if v in words]


def views_connection(locs: list[StudyLocation], partition: Partition | None = None,
                     views: Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
    """The read-only connection with the views over the given study folders (none: empty views), or over
    one (dataset, model) partition of them. `views`: build only these and what they read (None: all);
    a command that knows what it queries skips scanning and planning the tables it does not touch.

    One DuckDB instance (each costs ~15 ms to start): the views are written into a catalog file attached
    read-write, which is then re-attached read-only as the default database and the in-memory one
    detached, so the connection itself refuses CREATE/DROP/INSERT on everything it can name. Over local
    files the built catalog is kept and opened again while the files are unchanged (workers.store.catalog).
    """
    build = view_closure(VIEWS if views is None else views)
    tables = [t for t in DEDUP_KEYS if any(_RAW_OF.get(v) == t for v in build)]
    con = duckdb.connect()
    if not all(isinstance(loc.fs, pafs.LocalFileSystem) for loc in locs):
        return _build(con, build, tables, registered={f"_raw_{t}": open_dataset(locs, t, partition) for t in tables})
    listed = {t: [(loc, info) for loc in locs for info in listed_files(loc, t, partition)] for t in tables}
    key = catalog.catalog_key(build, [(t, i.path, i.size, i.mtime_ns) for t, f in listed.items() for _, i in f])
    kept = catalog.kept_catalog(key)
    if kept is not None:
        try:
            return _open_kept(con, str(kept))
        except duckdb.Error:  # removed or damaged meanwhile: build it anew
            con.close()
            con = duckdb.connect()
    scope = catalog.scope_key([loc.path for loc in locs], partition)
    known = _known_files(con, catalog.latest_catalog(scope))  # footers read by this store's last catalog
    files: list[tuple[str, str, int, int, str, str | None, str | None]] = []
    for t, entries in listed.items():
        for loc in locs:
            mine = [i for lo, i in entries if lo is loc]
            good, bad = sort_files(loc, t, [i.path for i in mine if (i.path, i.size, i.mtime_ns) not in known])
            fresh = {f: (json.dumps(cols), None) for f, cols in good} | {f: (None, why) for f, why in bad}
            for i in mine:
                cols, why = known.get((i.path, i.size, i.mtime_ns)) or fresh[i.path]
                files.append((t, i.path, i.size, i.mtime_ns, loc.display(i.path), cols, why))
    for *_, shown, _, why in files:
        if why is not None:
            warn_unreadable(shown, why)
    return _build(con, build, tables, files=files, key=key, scope=scope)


_FILES_COLUMNS = ("tbl VARCHAR, path VARCHAR, size BIGINT, mtime_ns BIGINT, shown VARCHAR, columns VARCHAR, "
                  "why VARCHAR")


def _known_files(con: duckdb.DuckDBPyConnection,
                 previous: Path | None) -> dict[tuple[str, int, int], tuple[str | None, str | None]]:
    """(path, size, mtime_ns) -> (columns as JSON, why unreadable) as an earlier catalog of the same store
    recorded them: a file unchanged since then need not have its footer read again ({} if none)."""
    if previous is None:
        return {}
    try:
        con.execute("ATTACH $path AS _previous (READ_ONLY)", {"path": str(previous)})
    except duckdb.Error:  # pruned or damaged meanwhile: read every footer
        return {}
    try:
        rows = con.execute("SELECT path, size, mtime_ns, columns, why FROM _previous._catalog_files").fetchall()
    except duckdb.Error:
        rows = []
    con.execute("DETACH _previous")
    return {(p, int(size), int(mt)): (cols, why) for p, size, mt, cols, why in rows}


def _build(con: duckdb.DuckDBPyConnection, build: list[str], tables: list[str], *,
           registered: dict[str, object] | None = None,
           files: list[tuple[str, str, int, int, str, str | None, str | None]] | None = None,
           key: str | None = None, scope: str | None = None) -> duckdb.DuckDBPyConnection:
    """Write the catalog of `build` over the `registered` datasets (remote stores) or the local `files`
    ((table, path, size, mtime_ns, path as shown, columns as JSON, why unreadable); all recorded, so that a
    kept catalog repeats the warnings and a later one reuses the footers), open it read-only on `con`, and
    keep it under `key` as the latest of `scope` (None: do not keep it)."""
    registered, files = registered or {}, files or []
    scanned: dict[str, list[tuple[str, Columns]]] = {t: [] for t in tables} if not registered else {}
    parsed: dict[str, Columns] = {}  # a store's files share a handful of column sets: parse each once
    for t, f, _, _, _, cols, why in files:
        if why is None:
            if cols not in parsed:
                parsed[cols] = tuple((n, ty) for n, ty in json.loads(cols))
            scanned[t].append((f, parsed[cols]))
    path, keep_as = catalog.new_catalog(key)
    try:
        con.execute("ATTACH $path AS _catalog_writer", {"path": path})
        con.execute("USE _catalog_writer")
        con.execute("BEGIN TRANSACTION")  # one commit for the whole catalog, not one per view
        for name, ds in registered.items():
            con.register(name, ds)
        con.execute(f"CREATE TABLE _catalog_files ({_FILES_COLUMNS})")
        if files:  # lists bound as parameters: pyarrow's pa.array(list) would import pandas (~0.25 s)
            con.execute("INSERT INTO _catalog_files SELECT " + ", ".join(f"unnest(${i + 1})" for i in range(7)),
                        [list(c) for c in zip(*files, strict=True)])
        for t in scanned:
            con.execute(f"CREATE VIEW _raw_{t} AS {_local_source(t, scanned[t])}")
        plans = {}
        for table in tables:
            if _DEDUP_VIEW[table] not in build:
                continue
            if table in scanned and not scanned[table]:  # no readable file: nothing to deduplicate
                plans[_DEDUP_VIEW[table]] = f"SELECT * FROM _raw_{table}"
                continue
            plans[_DEDUP_VIEW[table]], extra = _dedup_plan(con, table, DEDUP_KEYS[table])
            for name, tbl in extra.items():  # small: kept in the catalog with the views
                con.register("_extra", tbl)
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM _extra")
                con.unregister("_extra")
        if "checkpoints" in build:
            no_evaluations = "evaluations" in scanned and not scanned["evaluations"]
            plans["checkpoints"] = _MERGED if no_evaluations else _merge_plan(con)
        for name in build:
            con.execute(f"CREATE VIEW {name} AS {plans.get(name, VIEWS[name][0])}")
        con.execute("COMMIT")
        con.execute("USE memory")
        con.execute("DETACH _catalog_writer")
        _attach_read_only(con, path)
        if keep_as is not None:
            catalog.publish(path, keep_as)  # after attaching: the open handle survives a concurrent prune
            if scope is not None:
                catalog.remember(scope, keep_as)
    finally:
        for p in (path, path + ".wal"):
            if os.path.exists(p):
                os.remove(p)  # not kept: the attached database keeps its handle; nothing is left behind
    return _lock(con, [f for t in tables for f, _ in scanned.get(t, [])])


def _open_kept(con: duckdb.DuckDBPyConnection, path: str) -> duckdb.DuckDBPyConnection:
    """Open a kept catalog read-only on `con`, saying again which files it skipped and why."""
    _attach_read_only(con, path)
    files = con.execute("SELECT path, shown, why FROM _catalog_files").fetchall()
    for _, shown, why in files:
        if why is not None:
            warn_unreadable(shown, why)
    return _lock(con, [f for f, _, why in files if why is None])


def _attach_read_only(con: duckdb.DuckDBPyConnection, path: str) -> None:
    con.execute("ATTACH $path AS store (READ_ONLY)", {"path": path})
    con.execute("USE store")
    con.execute("DETACH memory")


def _lock(con: duckdb.DuckDBPyConnection, allowed: list[str]) -> duckdb.DuckDBPyConnection:
    """No file but the store's readable ones, no setting changed, from here on."""
    if allowed:
        con.execute("SET allowed_paths = $paths", {"paths": allowed})
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


# Statement types that only read. Anything else (INSERT, UPDATE, DELETE, CREATE, DROP, COPY, ATTACH,
# EXPORT, SET, ...) is refused by `check_read_only` with a message naming it.
_READ_TYPES = {"SELECT", "EXPLAIN", "PRAGMA"}


def check_read_only(sql: str, con: duckdb.DuckDBPyConnection | None = None) -> None:
    """Raise ReadOnlyError if any statement in `sql` is not a query (checked before execution). Parsed by
    `con` when given (DuckDB's module-level parser starts a default database, ~15 ms)."""
    for stmt in (con or duckdb).extract_statements(sql):
        kind = stmt.type.name
        if kind not in _READ_TYPES:
            text = stmt.query.strip().splitlines()[0][:80]
            raise ReadOnlyError(
                f"refused {kind} statement {text!r}: the analysis connection is read-only (the Parquet store is "
                "written only by the training workers); use SELECT, and --out FILE to save a result"
            )


def view_columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    """view -> [(column name, DuckDB type)] for every view of the connection's store catalog (one catalog
    query, not one DESCRIBE per view)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for view, col, typ in con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE database_name = "
            "current_database() ORDER BY table_name, column_index").fetchall():
        out.setdefault(view, []).append((col, typ))
    return out
