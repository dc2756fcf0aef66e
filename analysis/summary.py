"""The end-of-study summary that `orthosweep submit` prints: a table per configuration and a scatter.

Everything comes from the `runs` view (each restart at its last checkpoint), straight from DuckDB; a row is one
configuration (config_key), named by its dataset, model and the other fields that differ (analysis.groups).
"""

from __future__ import annotations

import duckdb

from analysis.tables import mean_std, text_table
from workers.store.layout import join_uri, write_bytes
from workers.store.views import connect

SUMMARY_METRICS = ("dto", "mig", "ds")
NAMES = {"dto": "DtO", "mig": "MIG", "ds": "DS"}

_SQL = """
SELECT study, dataset, model, config_key, count(*) AS restarts,
       count(*) FILTER (WHERE status = 'ok') AS ok,
       count(*) FILTER (WHERE status <> 'ok') AS not_ok,
       max(epoch) AS epoch,
       {aggs}
FROM runs GROUP BY study, dataset, model, config_key ORDER BY dataset, model, config_key
"""


def summary_rows(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of the per-configuration summary over restarts with status ok."""
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
    from analysis.frames import restarts
    from analysis.groups import configurations, label_map
    from analysis.plots import NothingToDraw, figure_png, scatter_dto_vs_metric

    con = connect(study_uri)
    cols, rows = summary_rows(con)
    if not rows:
        return f"{study_uri}: no checkpoint rows yet"
    recs = [dict(zip(cols, r, strict=True)) for r in rows]
    shown = [m for m in SUMMARY_METRICS if m in ("dto", "mig") or any(r[f"{m}_n"] for r in recs)]
    names = label_map(configurations(con), omit=("dataset", "model"))
    recs = sorted(recs, key=lambda r: (r["dataset"], r["model"], names.get((r["study"], r["config_key"]), "")))
    headers = ["dataset", "model", "configuration", "restarts", "failed", "epoch"] + [
        f"{NAMES[m]} (mean ± std)" for m in shown]
    table = [
        [r["dataset"], r["model"], _shown(names.get((r["study"], r["config_key"]), "all")),
         r["restarts"], r["not_ok"], r["epoch"]] + [mean_std(r[f"{m}_mean"], r[f"{m}_std"]) for m in shown]
        for r in recs
    ]
    pruned = overpruned_note(con)
    text = text_table(headers, table) + (f"\n{pruned}" if pruned else "")
    try:
        fig = scatter_dto_vs_metric(restarts(con), "mig", color_by="group", title="DtO vs MIG at the last checkpoint")
    except NothingToDraw as e:
        return text + f"\n\nno DtO vs MIG scatter: {e}"
    png_uri = join_uri(study_uri, "plots", "dto_vs_mig.png")
    write_bytes(png_uri, figure_png(fig))
    return text + f"\n\nDtO vs MIG scatter: {png_uri}"


def _shown(label: str) -> str:
    """A configuration column's cell: '—' where nothing but the dataset and model differs."""
    return "—" if label == "all" else label


def overpruned_note(con: duckdb.DuckDBPyConnection) -> str:
    """Names the restarts (status ok, last checkpoint) with fewer active units than the data has factors: a
    collapsed code's low DtO says nothing about disentanglement. Empty when there are none."""
    import numpy as np

    from analysis.stats import overpruned
    from workers.data.catalog import DATASETS

    rows = con.execute("SELECT dataset, model, beta, seed, active_units FROM runs WHERE status = 'ok' "
                       "ORDER BY dataset, model, beta, seed").fetchall()
    if not rows:
        return ""
    factors = np.array([DATASETS[r[0]].num_factors if r[0] in DATASETS else 0 for r in rows])
    active = np.array([np.nan if r[4] is None else r[4] for r in rows], float)
    flagged = [(r, int(f)) for r, f, bad in zip(rows, factors, overpruned(active, factors), strict=True) if bad]
    if not flagged:
        return ""
    groups: dict[tuple, list[str]] = {}
    for (d, m, beta, seed, a), f in flagged:
        key = (d, m, beta, f)
        groups.setdefault(key, []).append(f"{seed} ({int(a)} active)")
    parts = [f"{d}/{m}" + (f" beta={beta:g}" if beta is not None else "") + f" seeds {', '.join(seeds)} of {f} factors"
             for (d, m, beta, f), seeds in groups.items()]
    return (f"over-pruned restarts (fewer active units than factors; their DtO describes a collapsed code, and "
            f"`orthosweep stats` leaves them out): {len(flagged)}: " + "; ".join(parts))
