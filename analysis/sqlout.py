"""`orthosweep sql`: run a read-only query and write its result as a table, CSV, JSON or Parquet."""

from __future__ import annotations

import io
import json
import sys

import duckdb
import pyarrow as pa

from analysis.tables import text_table
from workers.store.layout import write_bytes
from workers.store.views import VIEWS, ReadOnlyError, check_read_only


def result_table(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """Arrow result of `sql` after the read-only check (raises ReadOnlyError before executing a write)."""
    check_read_only(sql, con)
    rel = con.sql(sql)
    if rel is None:  # e.g. a PRAGMA without a result
        return pa.table({})
    to_arrow = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table  # DuckDB 2.x / 1.x
    return to_arrow()


def render(tbl: pa.Table, fmt: str, max_rows: int | None = None) -> bytes:
    """`tbl` as bytes in `fmt` (table | csv | json | parquet). JSON: an array of objects, one per row."""
    if fmt == "parquet":
        import pyarrow.parquet as pq  # the writers only where a format needs them: `sql` starts faster

        buf = io.BytesIO()
        pq.write_table(tbl, buf)
        return buf.getvalue()
    if fmt == "csv":
        import pyarrow.csv as pacsv

        buf = io.BytesIO()
        pacsv.write_csv(_flatten_lists(tbl), buf)
        return buf.getvalue()
    if fmt == "json":
        return (json.dumps(tbl.to_pylist(), default=str, indent=1) + "\n").encode()
    rows = tbl.slice(0, max_rows).to_pylist() if max_rows is not None else tbl.to_pylist()
    text = text_table(tbl.column_names, [list(r.values()) for r in rows])
    more = tbl.num_rows - len(rows)
    if more > 0:
        text += f"\n... {more} more rows (use --format csv/json/parquet with --out for all of them)"
    return (text + f"\n({tbl.num_rows} rows)\n").encode()


def _flatten_lists(tbl: pa.Table) -> pa.Table:
    """CSV has no lists: list columns become their JSON text."""
    cols = []
    for c in tbl.columns:
        if pa.types.is_list(c.type) or pa.types.is_large_list(c.type) or pa.types.is_struct(c.type):
            c = pa.array([None if v is None else json.dumps(v, default=str) for v in c.to_pylist()], pa.string())
        cols.append(c)
    return pa.table(cols, names=tbl.column_names)


def run_query(con: duckdb.DuckDBPyConnection, sql: str, fmt: str = "table", out: str | None = None,
              max_rows: int | None = 200) -> None:
    """Run `sql` and print the result (or write it to `out`: every row, whatever the format)."""
    tbl = result_table(con, sql)
    data = render(tbl, fmt, None if out else max_rows)
    if out:
        write_bytes(out, data)
        print(f"{tbl.num_rows} rows -> {out}", file=sys.stderr)
    else:
        sys.stdout.write(data.decode())


def interactive(con: duckdb.DuckDBPyConnection) -> int:
    """A small prompt: statements end with ';', `.views` lists the views, `.quit` (or EOF) leaves."""
    try:
        import readline  # noqa: F401 - line editing and history when available
    except ImportError:
        pass

    print("orthosweep sql (read-only). Statements end with ';'. .views lists the views, .quit leaves.")
    buf: list[str] = []
    while True:
        try:
            line = input("... " if buf else "sql> ")
        except EOFError:
            print()
            return 0
        if not buf and line.strip() in (".quit", ".exit", "\\q"):
            return 0
        if not buf and line.strip() == ".views":
            for name, (_, doc) in VIEWS.items():
                print(f"  {name}: {doc}")
            continue
        buf.append(line)
        if not line.rstrip().endswith(";"):
            continue
        sql, buf = "\n".join(buf), []
        try:
            sys.stdout.write(render(result_table(con, sql), "table", 200).decode())
        except (ReadOnlyError, duckdb.Error) as e:
            print(f"error: {e}", file=sys.stderr)
