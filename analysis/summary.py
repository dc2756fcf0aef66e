"""The end-of-study summary that `orthosweep submit` prints: a table per (dataset, model) and a scatter.

Everything comes from the `runs` view (each restart at its last checkpoint), straight from DuckDB.
"""

from __future__ import annotations

import duckdb

from analysis.db import connect, join_uri, write_bytes
from analysis.tables import mean_std, text_table

SUMMARY_METRICS = ("dto", "mig", "ds")
NAMES = {"dto": "DtO", "mig": "MIG", "ds": "DS"}

_SQL = """
SELECT dataset, model, count(*) AS restarts,
       count(*) FILTER (WHERE status = 'ok') AS ok,
       count(*) FILTER (WHERE status <> 'ok') AS not_ok,
       max(epoch) AS epoch,
       {aggs}
FROM runs GROUP BY dataset, model ORDER BY dataset, model
"""


def summary_rows(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of the per-(dataset, model) summary over restarts with status ok."""
    aggs = ",\n       ".join(
        f"avg({m}) FILTER (WHERE status = 'ok') AS {m}_mean, stddev_samp({m}) FILTER (WHERE status = 'ok') AS {m}_std,"
        f" count({m}) FILTER (WHERE status = 'ok') AS {m}_n"
        for m in SUMMARY_METRICS
    )
    rel = con.execute(_SQL.format(aggs=aggs))
    cols = [d[0] for d in rel.description]
    return cols, rel.fetchall()


def final_summary(study_uri: str) -> str:
    """Printable table per (dataset, model): restarts, mean ± std of DtO and MIG (and DS when recorded) at
    the last checkpoint; also writes the DtO-vs-MIG scatter to `<study_uri>/plots/dto_vs_mig.png`."""
    from analysis.plots import figure_png, scatter_dto_vs_metric

    con = connect(study_uri)
    cols, rows = summary_rows(con)
    if not rows:
        return f"{study_uri}: no checkpoint rows yet"
    recs = [dict(zip(cols, r, strict=True)) for r in rows]
    shown = [m for m in SUMMARY_METRICS if m in ("dto", "mig") or any(r[f"{m}_n"] for r in recs)]
    headers = ["dataset", "model", "restarts", "failed", "epoch"] + [f"{NAMES[m]} (mean ± std)" for m in shown]
    table = [
        [r["dataset"], r["model"], r["restarts"], r["not_ok"], r["epoch"]]
        + [mean_std(r[f"{m}_mean"], r[f"{m}_std"]) for m in shown]
        for r in recs
    ]
    df = con.execute("SELECT dataset, model, epoch, dto, mig FROM runs WHERE status = 'ok'").df()
    fig = scatter_dto_vs_metric(df, "mig", color_by="group", title="DtO vs MIG at the last checkpoint")
    png_uri = join_uri(study_uri, "plots", "dto_vs_mig.png")
    write_bytes(png_uri, figure_png(fig))
    return text_table(headers, table) + f"\n\nDtO vs MIG scatter: {png_uri}"
