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
