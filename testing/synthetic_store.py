"""Synthetic Parquet stores with planted structure, for the analysis tests and `bench/analysis.py`.

Rows are written through `workers.store.write` (schema v1), exactly as training writes them, so everything the
analysis reads has been through the real writer. Nothing here trains a model.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from workers.store.layout import filesystem
from workers.store.schema import CHECKPOINT_SCHEMA
from workers.store.write import write_table_atomic


def checkpoint_row(run_key: str, epoch: int, *, config_key: str = "cfg", dataset: str = "synth_lin",
                   model: str = "beta_vae", seed: int = 0, beta: float | None = 1e-3, study: str = "planted",
                   **metrics: Any) -> dict[str, Any]:
    """One checkpoint row with the identifying columns filled; `metrics` are any other schema columns."""
    hparams = {"beta": beta} if beta is not None else {}
    return {"study": study, "run_key": run_key, "config_key": config_key, "dataset": dataset, "model": model,
            "arch": "mlp", "latent_dim": 2, "seed": seed, "hparams": hparams, "beta": beta, "epoch": epoch,
            "status": "ok", "config": {"dataset": dataset, "model": model, "hparams": hparams, "latent_dim": 2},
            **metrics}


def bench_table(n_restarts: int, n_checkpoints: int, n_configs: int, rng: np.random.Generator,
                study: str = "bench", dataset: str = "synth_lin", model: str = "beta_vae") -> pa.Table:
    """A schema-v1 table of n_restarts × n_checkpoints rows over `n_configs` β values of one cell.

    Half of each group's restarts are 'disentangled' (MIG ≈ 0.8, low DtO), half not (MIG ≈ 0.1), with DtO
    monotone decreasing in MIG, so every statistic has something real to find.
    """
    n = n_restarts * n_checkpoints
    restart = np.repeat(np.arange(n_restarts), n_checkpoints)
    epoch = np.tile(np.arange(n_checkpoints) * 10, n_restarts)
    config = restart % n_configs
    betas = np.logspace(-4, 0, n_configs)
    good = rng.random(n_restarts)[restart] < 0.5
    progress = (epoch + 10) / (10 * n_checkpoints)
    mig = np.clip(np.where(good, 0.8, 0.1) * progress + rng.normal(0, 0.03, n), 0, 1)
    dto = np.clip(1.0 - mig + rng.normal(0, 0.05, n), 0, None)
    mpf = np.stack([mig, np.clip(mig + rng.normal(0, 0.05, n), 0, 1)], axis=1)
    cols: dict[str, Any] = {
        "schema_version": np.full(n, 1, np.int32), "study": np.full(n, study, object),
        "run_key": np.char.add("r", restart.astype(str)), "config_key": np.char.add("c", config.astype(str)),
        "trial_id": np.char.add("t", (restart // 16).astype(str)),
        "dataset": np.full(n, dataset, object), "model": np.full(n, model, object), "arch": np.full(n, "mlp", object),
        "latent_dim": np.full(n, 2), "seed": restart // n_configs, "beta": betas[config],
        "hparams": np.array([json.dumps({"beta": b}) for b in betas])[config],
        "config": np.array([json.dumps({"dataset": dataset, "model": model, "hparams": {"beta": b}})
                            for b in betas])[config],
        "epoch": epoch, "epochs": np.full(n, 10 * (n_checkpoints - 1)), "step": epoch * 100,
        "status": np.full(n, "ok", object), "wall_seconds": epoch * 0.5,
        "written_at": np.full(n, np.datetime64("2026-01-01T00:00:00", "us")) + restart.astype("timedelta64[s]"),
        "attempt": np.zeros(n, np.int64), "loss": 5 - mig, "recon": 4 - mig, "kl": 1 + mig,
        "dto": dto, "mig": mig, "ds": np.clip(mig + rng.normal(0, 0.05, n), 0, 1),
        "mig_per_factor": pa.FixedSizeListArray.from_arrays(mpf.ravel(), 2).cast(pa.list_(pa.float64())),
        "active_units": np.full(n, 2), "kl_per_dim": None,
    }
    arrays = []
    for f in CHECKPOINT_SCHEMA:
        v = cols.get(f.name)
        if v is None:
            arrays.append(pa.nulls(n, f.type))
        elif isinstance(v, pa.Array):
            arrays.append(v)
        elif f.name == "written_at":
            arrays.append(pa.array(v, pa.timestamp("us")).cast(f.type))
        else:
            arrays.append(pa.array(v, f.type))
    return pa.Table.from_arrays(arrays, schema=CHECKPOINT_SCHEMA)


def write_bench_store(study_uri: str, tbl: pa.Table, rows_per_file: int = 50_000) -> list[str]:
    """Write `tbl` under `<study_uri>/checkpoints/dataset=../model=../` in files of `rows_per_file` rows."""
    fs, base = filesystem(study_uri)
    d, m = tbl["dataset"][0].as_py(), tbl["model"][0].as_py()
    out = []
    for i, start in enumerate(range(0, tbl.num_rows, rows_per_file)):
        out.append(write_table_atomic(fs, f"{base}/checkpoints/dataset={d}/model={m}", f"part-{i:05d}.parquet",
                                      tbl.slice(start, rows_per_file)))
    return out


def reemitted(tbl: pa.Table, fraction: float, rng: np.random.Generator) -> pa.Table:
    """A retry's re-emits: a random `fraction` of the rows again, written a day later with attempt + 1
    (and a different DtO, so a reader that kept the stale copy would give a different answer)."""
    import pyarrow.compute as pc

    take = np.sort(rng.choice(tbl.num_rows, size=int(fraction * tbl.num_rows), replace=False))
    t = tbl.take(pa.array(take))
    later = pc.add(t["written_at"], pa.scalar(86_400_000_000, pa.duration("us")))
    later = later.cast(t.schema.field("written_at").type)
    t = t.set_column(t.schema.get_field_index("written_at"), "written_at", later)
    t = t.set_column(t.schema.get_field_index("attempt"), "attempt", pc.add(t["attempt"], 1))
    return t.set_column(t.schema.get_field_index("dto"), "dto", pc.add(t["dto"], 0.5))
