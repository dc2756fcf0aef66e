"""Ground-truth datasets (design.md §4): `load(name, **options)` returns a `Dataset`.

    from workers.data import load
    ds = load("synth_lin", ratio=2.0, n=50_000, data_seed=0)
    x = ds.observations_at(ds.split_indices("train")[:64])     # float32 (64, 3)

Names and options are those of `workers.data.catalog.DATASETS`; an unknown name or option, a value of
the wrong type or a bad file raises `DataError` naming it and what was expected.

Every dataset with factors also takes `perturbation: <folder>` (the optimised ε-perturbation `orthosweep
perturb` wrote) or `noise: ε` (uniform noise in [−ε, ε]): the loaded dataset is then wrapped
(`workers/data/perturbed.py`), with the base dataset's factors, points and split.
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any

from .base import DataError, Dataset, GridDataset
from .catalog import DATASETS, base_options, check_values

__all__ = ["DataError", "Dataset", "GridDataset", "load"]

# name -> "module:factory"; the factory takes the catalog's options as keyword arguments.
_FACTORIES = {
    "synth_lin": "workers.data.synthetic:SynthLin",
    "synth_nonlin": "workers.data.synthetic:SynthNonlin",
    "dsprites": "workers.data.dsprites:open_dsprites",
    "shapes3d": "workers.data.shapes3d:open_shapes3d",
    "mnist": "workers.data.mnist:open_mnist",
    "fashion_mnist": "workers.data.mnist:open_fashion_mnist",
}


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
        if value is None:
            if spec.required:
                raise DataError(f"dataset {name!r}: option {key!r} is required ({_describe(spec.check)})")
            out[key] = None
            continue
        if spec.type is float and isinstance(value, int | float) and not isinstance(value, bool):
            value = float(value)
        elif spec.type is str and isinstance(value, Path):
            value = str(value)
        if not isinstance(value, spec.type) or isinstance(value, bool):
            raise DataError(f"dataset {name!r}: option {key!r} must be {spec.type.__name__}, "
                            f"got {value!r} ({type(value).__name__})")
        if spec.check == "positive" and not value > 0:
            raise DataError(f"dataset {name!r}: option {key!r} must be positive, got {value!r}")
        out[key] = value
    problems = check_values(name, out)
    if problems:
        raise DataError("; ".join(problems))
    return out


def _describe(check: str) -> str:
    return {"path": "a path to the dataset's file(s)", "positive": "a positive number"}.get(check, "a value")


def load(name: str, **options: Any) -> Dataset:
    """Open dataset `name` with its catalog options (defaults for those not given)."""
    opts = check_options(name, options)
    module_name, factory = _FACTORIES[name].split(":")
    base = getattr(importlib.import_module(module_name), factory)(**base_options(name, opts))
    if opts.get("perturbation") is not None:
        from .perturbed import PerturbedDataset

        return PerturbedDataset(base, opts["perturbation"])
    if opts.get("noise") is not None:
        from .perturbed import NoisyDataset

        return NoisyDataset(base, opts["noise"])
    return base
