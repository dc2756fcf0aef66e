"""Restart groups: a group is one configuration (design.md §8), labelled by what differs within the study.

Every table, figure and claim of the analysis groups restarts by `config_key` (everything that defines a
restart but its seed: dataset and its options such as n, ratio, noise, perturbation; model and its
hyperparameters; architecture, latent size, likelihood, optimiser and training settings). This module is
the one rule that names those groups:

    configurations(con)      one row per (study, config_key): the configuration flattened into fields
    config_fields(...)       one configuration's fields, from its stored `config` JSON (or, for rows written
                             without it, from the identity columns dataset, model, hparams, arch, latent_dim)
    group_labels(configs)    one label per configuration: the model, then every other field whose value
                             differs between the configurations of that dataset and model
                             (`beta_vae · noise=0.1`); the dataset leads when it differs
                             (`synth_lin · beta_vae`); `omit` leaves fields out (the x axis of a figure
                             over β)
    attach_groups(df, ...)   adds the `group` column (and the fields, as `cfg.<name>` columns) to any frame
                             with study and config_key columns; `label_map` for tables built in SQL

A field's name is the last component of its path in the configuration (`dataset_options.noise` -> `noise`,
`hparams.beta` -> `beta`, `optimizer.lr` -> `lr`, `arch.kind` -> `arch`) unless two paths share it, then the
whole path. Values print as floats in %g, lists joined by 'x', paths by their last component (a
`perturbation:` folder by its name), and an absent or null option as 'none'.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import duckdb
import pandas as pd

FIELD_PREFIX = "cfg."
SEP = " · "
RENAMED = {"arch.kind": "arch", "optimizer.name": "optimizer"}
LEADING = ("dataset", "model")  # then hyperparameters, dataset options, and the rest, in this order
ORDER = ("hparams.", "dataset_options.", "")


def configurations(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per (study, config_key) of the `checkpoints` view with the configuration's fields as
    `cfg.<name>` columns (see the module docstring)."""
    rows = con.execute(
        "SELECT study, config_key, any_value(config) AS config, any_value(dataset) AS dataset, "
        "any_value(model) AS model, any_value(hparams) AS hparams, any_value(arch) AS arch, "
        "any_value(latent_dim) AS latent_dim FROM checkpoints GROUP BY study, config_key "
        "ORDER BY study, config_key").fetchall()
    return config_frame([(s, ck, config_fields(cfg, dataset=d, model=m, hparams=hp, arch=a, latent_dim=ld))
                         for s, ck, cfg, d, m, hp, a, ld in rows])


def config_fields(config: str | dict | None, *, dataset: str | None = None, model: str | None = None,
                  hparams: str | dict | None = None, arch: str | None = None,
                  latent_dim: int | None = None) -> dict[str, Any]:
    """The flattened configuration {path: value} of one restart group.

    config: the stored `config` JSON (RestartConfig.to_dict()); the identity columns fill what it lacks
    (rows written without a config, e.g. by hand).
    """
    cfg = _parse(config)
    flat = _flatten(cfg)
    hp = _parse(hparams)
    fallback = {"dataset": dataset, "model": model, "latent_dim": latent_dim,
                **{f"hparams.{k}": v for k, v in hp.items()}}
    if arch is not None and not any(k.startswith("arch.") for k in flat):
        fallback["arch.kind"] = arch
    for k, v in fallback.items():
        if v is not None and flat.get(k) is None:
            flat[k] = v
    return flat


def config_frame(items: Iterable[tuple[str, str, dict[str, Any]]]) -> pd.DataFrame:
    """(study, config_key, flattened fields) triples as a frame with `cfg.<name>` columns (absent -> None)."""
    items = list(items)
    paths = sorted({p for _, _, f in items for p in f}, key=_path_order)
    names = _short_names(paths)
    data = [{"study": s, "config_key": ck, **{FIELD_PREFIX + names[p]: _value(f.get(p)) for p in paths}}
            for s, ck, f in items]
    return pd.DataFrame(data, columns=["study", "config_key", *(FIELD_PREFIX + names[p] for p in paths)])


def varying_fields(configs: pd.DataFrame, omit: Sequence[str] = ()) -> list[str]:
    """The field names (without the prefix) whose value differs between the rows of `configs`."""
    out = []
    for c in configs.columns:
        if c.startswith(FIELD_PREFIX) and c[len(FIELD_PREFIX):] not in omit:
            if configs[c].map(field_text).nunique(dropna=False) > 1:
                out.append(c[len(FIELD_PREFIX):])
    return out


def group_labels(configs: pd.DataFrame, omit: Sequence[str] = ()) -> pd.Series:
    """One label per row of `configs` (a `config_frame`, possibly a subset): the dataset when it differs
    between the rows, the model, then `name=value` for every other field that differs between the rows of
    the same dataset and model (a hyperparameter one model lacks does not label the others). Rows whose
    fields all agree but whose config_key differs (configurations stored without their `config`) get the
    key's first 8 characters appended, so distinct groups never share a label."""
    lead = [FIELD_PREFIX + c for c in LEADING if FIELD_PREFIX + c in configs]
    show_dataset = "dataset" in varying_fields(configs, omit)
    parts = pd.Series("", index=configs.index, dtype=object)
    cells = configs.groupby([configs[c].map(field_text) for c in lead], sort=False) if lead else [((), configs)]
    for _, cell in cells:
        fields = [f for f in varying_fields(cell, omit) if f not in LEADING]
        for i, r in cell.iterrows():
            p = [field_text(r[FIELD_PREFIX + "dataset"])] if show_dataset else []
            if FIELD_PREFIX + "model" in r and "model" not in omit:
                p.append(field_text(r[FIELD_PREFIX + "model"]))
            p += [f"{f}={field_text(r[FIELD_PREFIX + f])}" for f in fields]
            parts[i] = SEP.join(p) or "all"
    if not omit:
        clash = parts.duplicated(keep=False) & ~configs.duplicated(["study", "config_key"], keep=False)
        parts[clash] = parts[clash] + SEP + configs.loc[clash, "config_key"].astype(str).str[:8]
    return parts


def attach_groups(df: pd.DataFrame, configs: pd.DataFrame) -> pd.DataFrame:
    """`df` (rows with study and config_key) with the `group` label and the `cfg.<name>` fields of its
    configuration joined on; the labels are those of every configuration in `configs` (the study)."""
    labelled = configs.assign(group=group_labels(configs))
    drop = [c for c in labelled.columns if c in df and c not in ("study", "config_key")]
    return df.drop(columns=drop).merge(labelled, on=["study", "config_key"], how="left")


def label_map(configs: pd.DataFrame, omit: Sequence[str] = ()) -> dict[tuple[str, str], str]:
    """(study, config_key) -> `group_labels` of `configs` (for tables built in SQL)."""
    return dict(zip(zip(configs["study"], configs["config_key"], strict=True), group_labels(configs, omit),
                    strict=True))


def relabel(df: pd.DataFrame, omit: Sequence[str] = ()) -> pd.Series:
    """Labels of df's rows (frames from `attach_groups`) by the fields that differ among df's own
    configurations, leaving out `omit` (e.g. ('beta',) for panels of a figure drawn over β)."""
    fields = [c for c in df.columns if c.startswith(FIELD_PREFIX)]
    labels = label_map(df[["study", "config_key", *fields]].drop_duplicates(["study", "config_key"]), omit)
    return pd.Series([labels[k] for k in zip(df["study"], df["config_key"], strict=True)], index=df.index)


# ------------------------------------------------------------------------------------------------ helpers

def _parse(v: str | dict | None) -> dict:
    if isinstance(v, dict):
        return v
    if not v:
        return {}
    try:
        out = json.loads(v)
    except (TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, path + "."))
        else:
            out[path] = v
    return out


def _path_order(path: str) -> tuple[int, str]:
    if path in LEADING:
        return LEADING.index(path), path
    return len(LEADING) + next(i for i, p in enumerate(ORDER) if path.startswith(p)), path


def _short_names(paths: Sequence[str]) -> dict[str, str]:
    short = {p: RENAMED.get(p, p.rsplit(".", 1)[-1]) for p in paths}
    counts = pd.Series(list(short.values())).value_counts()
    return {p: (s if counts[s] == 1 else p) for p, s in short.items()}


def _value(v: Any) -> Any:
    """A field's value in a hashable, comparable form (lists become tuples)."""
    return tuple(v) if isinstance(v, list) else v


def field_text(v: Any) -> str:
    """A field's value as a label prints it (module docstring)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "none"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, tuple):
        return "x".join(field_text(x) for x in v) or "none"
    s = str(v)
    return s.rstrip("/").rsplit("/", 1)[-1] if "/" in s else s
