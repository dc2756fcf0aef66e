"""The read-only study connection `orthosweep.open` returns: DuckDB's connection with a `sql` whose result
both fetches like a cursor and converts like a relation, whatever DuckDB release is installed (relations
of DuckDB 2 no longer have `fetchone`)."""

from __future__ import annotations

from typing import Any


class Result:
    """One query over the study's views. Fetch rows like a cursor (`fetchone`, `fetchmany`, `fetchall`: the
    query runs once, on the first fetch, and later fetches continue where the last stopped) or convert the
    whole result (`df()` pandas, `pl()` polars, `arrow()` a pyarrow table, `fetchnumpy()`); anything else
    is DuckDB's relation for the query (`.columns`, `.limit(5)`, `.filter(...)`, ...)."""

    def __init__(self, con: Any, query: str, params: Any = None):
        self._con, self._query, self._params = con, query, params
        self._rel: Any = None
        self._cursor: Any = None

    @property
    def relation(self) -> Any:
        """The query as a DuckDB relation (lazy: built on first use)."""
        if self._rel is None:
            self._rel = self._con.sql(self._query, params=self._params) if self._params is not None \
                else self._con.sql(self._query)
        return self._rel

    def _cur(self) -> Any:
        if self._cursor is None:
            self._cursor = self._con.cursor().execute(self._query, self._params) if self._params is not None \
                else self._con.cursor().execute(self._query)
        return self._cursor

    def fetchone(self) -> tuple | None:
        return self._cur().fetchone()

    def fetchmany(self, size: int = 1) -> list[tuple]:
        return self._cur().fetchmany(size)

    def fetchall(self) -> list[tuple]:
        return self._cur().fetchall()

    def df(self) -> Any:
        return self.relation.df()

    def pl(self) -> Any:
        return self.relation.pl()

    def arrow(self) -> Any:
        """The whole result as a pyarrow Table."""
        rel = self.relation
        return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()

    def fetchnumpy(self) -> Any:
        return self.relation.fetchnumpy()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.relation, name)

    def __repr__(self) -> str:
        return repr(self.relation)

    def _repr_html_(self) -> str | None:
        fn = getattr(self.relation, "_repr_html_", None)
        return fn() if fn is not None else None


class Connection:
    """A read-only DuckDB connection over a study's views (`orthosweep views` documents them).

    `sql(query)` gives a `Result`; `execute`, `cursor`, `close` and every other attribute are DuckDB's
    own; `duckdb` is the underlying `DuckDBPyConnection`. Usable as a context manager (closes on exit)."""

    def __init__(self, con: Any):
        self.duckdb = con

    def sql(self, query: str, params: Any = None) -> Result:
        """The result of one read-only query (SELECT, EXPLAIN, PRAGMA) over the views."""
        return Result(self.duckdb, query, params)

    query = sql

    def tables(self) -> list[str]:
        """The views this connection offers (checkpoints, runs, groups, trace, evaluations, ...)."""
        return [r[0] for r in self.duckdb.execute(
            "SELECT table_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND NOT starts_with(table_name, '_') GROUP BY table_name ORDER BY table_name").fetchall()]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.duckdb, name)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.duckdb.close()
