"""Ground-truth datasets (design.md §4): `load(name, **options)` returns a `Dataset`.

    from workers.data import load
    ds = load("synth_lin", ratio=2.0, n=50_000, data_seed=0)
    x = ds.observations_at(ds.split_indices("train")[:64])     # float32 (64, 3)

Names and options are those of the registry `workers.data.catalog.DATASETS`; an unknown name or option, a value
of the wrong type or a bad file raises `DataError` naming it and what was expected.

Every dataset with factors also takes `perturbation: <folder>` (the optimised ε-perturbation `orthosweep
perturb` wrote) or `noise: ε` (uniform noise in [−ε, ε]): the loaded dataset is then wrapped
(`workers/data/perturbed.py`), with the base dataset's factors, points and split.
"""

from __future__ import annotations

import difflib
from typing import Any

from .base import DataError, Dataset, GridDataset
from .catalog import DATASETS, base_options, check_values
from .perturbed import NoisyDataset, PerturbedDataset

__all__ = ["DataError", "Dataset", "GridDataset", "load"]


def check_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The full option dict of dataset `name` (catalog defaults filled in), or DataError naming the problem."""
    if name not in DATASETS:
        hint = difflib.get_close_matches(str(name), list(DATASETS), n=1)
        raise DataError(f"unknown dataset {name!r}{f' (did you mean {hint[0]!r}?)' if hint else ''}; "
                        f"available: {', '.join(DATASETS)}")
    info = DATASETS[name]
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        raise DataError(f"dataset {name!r}: unknown option(s) {', '.join(map(repr, unknown))}; "
                        f"options: {', '.join(info.options) or 'none'}")
    out: dict[str, Any] = {}
    for key, spec in info.options.items():
        value = options.get(key, spec.default)
        problem = spec.problem(key, value)
        if problem is not None:
            raise DataError(f"dataset {name!r}: {problem}")
        out[key] = spec.coerce(value)
    problems = check_values(name, out)
    if problems:
        raise DataError("; ".join(problems))
    return out


def load(name: str, **options: Any) -> Dataset:
    """Open dataset `name` with its catalog options (defaults for those not given)."""
    opts = check_options(name, options)
    base = DATASETS[name].opener(**base_options(name, opts))
    if opts.get("perturbation") is not None:
        return PerturbedDataset(base, opts["perturbation"])
    if opts.get("noise") is not None:
        return NoisyDataset(base, opts["noise"])
    return base
