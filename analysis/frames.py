"""DataFrames the statistics, figures and report work on, pulled from the DuckDB views.

One row per restart (`restarts`), or per (restart, checkpoint) (`checkpoint_points`). Only the columns
the analysis uses are read, so a million-row store stays cheap.
"""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd

from analysis.groups import attach_groups, configurations
from workers.data.catalog import DATASETS
from workers.store.schema import METRIC_COLUMNS

ID_COLUMNS = ("study", "dataset", "model", "config_key", "run_key", "seed", "beta", "hparams", "latent_dim", "epoch",
              "epochs", "status")  # not `config`: long JSON, needed for two restarts at most (`restart_config`)
LOSS_COLUMNS = ("loss", "recon", "kl")
SCALAR_METRICS = tuple(c for c, t in METRIC_COLUMNS.items() if not str(t).startswith("list"))


def restarts(con: duckdb.DuckDBPyConnection, epoch: int | None = None, *, ok_only: bool = True) -> pd.DataFrame:
    """One row per restart: at its last checkpoint (`runs`), or at checkpoint `epoch` when given; with its
    group's label (`group`) and configuration fields (`cfg.<name>`) from `analysis.groups`."""
    cols = ", ".join((*ID_COLUMNS, *LOSS_COLUMNS, *SCALAR_METRICS, "mig_per_factor", "kl_per_dim"))
    where = ["status = 'ok'"] if ok_only else []
    if epoch is None:
        src = "runs"
    else:
        src, where = "checkpoints", [*where, f"epoch = {int(epoch)}"]
    sql = f"SELECT {cols} FROM {src}" + (f" WHERE {' AND '.join(where)}" if where else "")
    df = con.execute(sql + " ORDER BY study, dataset, model, config_key, seed").df()
    return attach_groups(df, configurations(con))


def checkpoint_points(con: duckdb.DuckDBPyConnection, max_points: int = 40_000, seed: int = 0) -> pd.DataFrame:
    """(dataset, model, beta, epoch, dto, mig, ds) per checkpoint with status ok; a uniform sample of at
    most `max_points` rows when there are more (the figures say so through `attrs['sampled_from']`)."""
    n = con.execute("SELECT count(*) FROM checkpoints WHERE status = 'ok'").fetchall()[0][0]
    sample = f" USING SAMPLE reservoir({int(max_points)} ROWS) REPEATABLE ({seed})" if n > max_points else ""
    df = con.execute("SELECT dataset, model, beta, epoch, dto, mig, ds FROM checkpoints WHERE status = 'ok'"
                     + sample).df()
    df.attrs["sampled_from"] = int(n)
    return df


def restart_config(con: duckdb.DuckDBPyConnection, run_key: str) -> dict:
    """The `config` JSON of one restart (the whole restart definition), parsed."""
    rows = con.execute("SELECT config FROM checkpoints_raw WHERE run_key = ? AND config IS NOT NULL LIMIT 1",
                       [run_key]).fetchall()
    if not rows:
        raise KeyError(f"no config recorded for restart {run_key!r}")
    return json.loads(rows[0][0])


def n_factors(df: pd.DataFrame) -> np.ndarray:
    """Ground-truth factor count of each row's dataset (0 when unknown or the data has no factors)."""
    return df["dataset"].map(lambda d: DATASETS[d].num_factors if d in DATASETS else 0).to_numpy(int)


def metrics_present(df: pd.DataFrame, candidates: tuple[str, ...] = (*LOSS_COLUMNS, *SCALAR_METRICS)) -> list[str]:
    """The candidate columns holding at least one value."""
    return [c for c in candidates if c in df and df[c].notna().any()]


TRACE_CURVES = ("loss", "recon", "kl")


def _group_columns(con: duckdb.DuckDBPyConnection) -> str:
    """SQL of one row per (study, config_key) with the labelling columns (the trace has no hyperparameters)."""
    return ("SELECT study, config_key, any_value(dataset) AS dataset, any_value(model) AS model, "
            "any_value(beta) AS beta FROM checkpoints GROUP BY study, config_key")


def trace_quantiles(con: duckdb.DuckDBPyConnection, columns: tuple[str, ...] = TRACE_CURVES) -> pd.DataFrame:
    """Training curves per group from the `trace` view: one row per (study, config_key, step) with
    dataset, model, beta, `n` (seeds with a row at that step) and, per column, its median, 25th and 75th
    percentile over seeds (`<col>_median`, `<col>_q25`, `<col>_q75`) and `steps_per_second` (median)."""
    aggs = ", ".join(f"median({c}) AS {c}_median, quantile_cont({c}, 0.25) AS {c}_q25, "
                     f"quantile_cont({c}, 0.75) AS {c}_q75" for c in columns)
    sql = (f"WITH g AS ({_group_columns(con)}) SELECT t.study, t.config_key, g.dataset, g.model, g.beta, t.step, "
           f"count(*) AS n, {aggs}, median(t.steps_per_second) AS steps_per_second FROM trace AS t "
           "LEFT JOIN g USING (study, config_key) GROUP BY t.study, t.config_key, g.dataset, g.model, g.beta, t.step "
           "ORDER BY t.study, t.config_key, t.step")
    return con.execute(sql).df()


def trace_kl_ranks(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per-latent KL curves per group from the trace's `kl_per_dim`: a seed's latents are ranked by their KL at
    its last trace row (rank 1: the largest), and per (study, config_key, step, latent_rank) the median, 25th
    and 75th percentile over seeds of that latent's KL (nats) are given, with dataset, model, beta and `n`.
    Latent indices are not comparable across seeds; ranks are. Empty without per-latent KL."""
    sql = f"""
    WITH t AS (SELECT study, run_key, config_key, step, unnest(kl_per_dim) AS v,
                      generate_subscripts(kl_per_dim, 1) AS j FROM trace WHERE kl_per_dim IS NOT NULL),
    last AS (SELECT study, run_key, max(step) AS step FROM trace WHERE kl_per_dim IS NOT NULL
             GROUP BY study, run_key),
    ranked AS (SELECT t.study, t.run_key, t.j,
                      row_number() OVER (PARTITION BY t.study, t.run_key ORDER BY t.v DESC, t.j) AS latent_rank
               FROM t JOIN last USING (study, run_key, step)),
    g AS ({_group_columns(con)})
    SELECT t.study, t.config_key, g.dataset, g.model, g.beta, t.step, r.latent_rank, count(*) AS n,
           median(t.v) AS median, quantile_cont(t.v, 0.25) AS q25, quantile_cont(t.v, 0.75) AS q75
    FROM t JOIN ranked AS r USING (study, run_key, j) LEFT JOIN g USING (study, config_key)
    GROUP BY t.study, t.config_key, g.dataset, g.model, g.beta, t.step, r.latent_rank
    ORDER BY t.study, t.config_key, r.latent_rank, t.step"""
    return con.execute(sql).df()
