"""The Parquet schema of the store, version 1, defined once (design.md §7).

Metric columns come from the metric registry (`workers.metrics.registry`): a metric added there is a
column here. Readers fill a column a file lacks with null, so files written before a metric existed stay
readable.
"""

from __future__ import annotations

import pyarrow as pa

from workers.metrics.registry import METRICS, metric_columns

SCHEMA_VERSION = 1
STATUSES = ("ok", "diverged", "failed")
EVAL_STATUSES = ("ok", "failed")
DONE_STATUSES = ("ok", "diverged")  # a restart with one of these at its final epoch is never trained again

_f64, _i64, _str = pa.float64(), pa.int64(), pa.string()
_KIND_TYPES = {"float": _f64, "int": _i64, "list": pa.list_(_f64)}

METRIC_COLUMNS: dict[str, pa.DataType] = {c: _KIND_TYPES[k] for c, k in metric_columns().items()}

CHECKPOINT_SCHEMA = pa.schema([
    ("schema_version", pa.int32()),
    ("study", _str), ("run_key", _str), ("config_key", _str), ("trial_id", _str),
    ("dataset", _str), ("model", _str), ("arch", _str), ("latent_dim", _i64), ("seed", _i64),
    ("hparams", _str),  # JSON of the objective hyperparameters
    ("config", _str),  # JSON of the whole restart definition (what config_key hashes)
    ("beta", _f64),
    ("epoch", _i64), ("epochs", _i64), ("step", _i64),
    ("status", _str),  # ok | diverged | failed
    ("error", _str),
    ("wall_seconds", _f64), ("written_at", pa.timestamp("us", tz="UTC")), ("attempt", _i64),
    ("host", _str), ("code_version", _str),
    ("loss", _f64), ("recon", _f64), ("kl", _f64),  # on held-out data, per example (summed over dims)
    ("evaluated", pa.list_(_str)),  # the metrics this row computed (their columns hold the values)
    ("metrics_seconds", _f64),  # seconds this checkpoint's training blocked on computing them
    *METRIC_COLUMNS.items(),
])

# One row per (run_key, epoch, metric) evaluation of a stored checkpoint, written by the evaluation stage
# (`orthosweep evaluate`, asynchronous evaluation): the metric's registry columns, the rest null.
EVALUATION_SCHEMA = pa.schema([
    ("schema_version", pa.int32()),
    ("study", _str), ("run_key", _str), ("config_key", _str), ("dataset", _str), ("model", _str),
    ("seed", _i64), ("epoch", _i64), ("metric", _str),
    ("status", _str),  # ok | failed (error says why; the metric's columns are then null)
    ("error", _str),
    ("wall_seconds", _f64),  # seconds this evaluation took (model load excluded)
    ("written_at", pa.timestamp("us", tz="UTC")), ("attempt", _i64),
    ("host", _str), ("code_version", _str),
    *((c, _KIND_TYPES[k]) for m in METRICS.values() for c, k in m.columns.items()),
])

TRACE_SCHEMA = pa.schema([
    ("schema_version", pa.int32()),
    ("study", _str), ("run_key", _str), ("config_key", _str), ("dataset", _str), ("model", _str),
    ("seed", _i64), ("step", _i64), ("epoch", _f64),
    ("loss", _f64), ("recon", _f64), ("kl", _f64), ("kl_active", _f64), ("delta_kl", _f64),
    ("active_units", _i64),
    ("kl_per_dim", pa.list_(_f64)),  # per latent, on the training batch (nats); null without a posterior
    ("steps_per_second", _f64),  # the trial's training steps per second since its previous trace row (evaluations
    #                              at checkpoints excluded); null on a trial's first row
    ("written_at", pa.timestamp("us", tz="UTC")), ("attempt", _i64),
])

TABLES: dict[str, pa.Schema] = {"checkpoints": CHECKPOINT_SCHEMA, "trace": TRACE_SCHEMA,
                                "evaluations": EVALUATION_SCHEMA}
# The key each table is deduplicated on, besides (study, run_key): the latest write per key wins.
DEDUP_KEYS: dict[str, tuple[str, ...]] = {"checkpoints": ("epoch",), "trace": ("step",),
                                          "evaluations": ("epoch", "metric")}


def compatible(got: pa.DataType, want: pa.DataType) -> bool:
    """Whether a file's column type reads as the schema's type (null columns and widening ints do)."""
    if got == want or pa.types.is_null(got):
        return True
    if pa.types.is_timestamp(got) and pa.types.is_timestamp(want):
        return True
    return pa.types.is_integer(got) and (pa.types.is_integer(want) or pa.types.is_floating(want))
