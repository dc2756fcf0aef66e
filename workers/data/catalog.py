"""Light metadata about every dataset: what the study spec validates against.

Importing this module must stay cheap (no torch, no data generation): the spec validator and the CLI
use it before anything is scheduled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OptionSpec:
    """One dataset option: its type, default and an allowed-value check described in words."""

    type: type
    default: Any
    check: str = ""  # "positive", "path", "perturbation" (a perturbation folder or URI), "" (any)
    required: bool = False
    keyed_when_unset: bool = True  # False: an unset (None) option is left out of the restart's options, so
    # options added later (perturbation, noise) leave the run keys of existing studies unchanged


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_factors: int  # 0: no generative factors (factor metrics are null)
    kind: str  # "vector" (N, D) or "image" (N, C, H, W)
    observation_shape: tuple[int, ...]
    likelihood: str  # "gaussian" or "bernoulli": the paper's choice for this data
    options: dict[str, OptionSpec] = field(default_factory=dict)


def _altered(options: dict[str, OptionSpec]) -> dict[str, OptionSpec]:
    """`options` plus the two alterations of thesis §4.3 every dataset with factors offers (workers/data/perturbed.py):
    `perturbation` (x' = x + ε·m(w) from a folder `orthosweep perturb` wrote) and `noise` (uniform noise in
    [−ε, ε] per element, fixed per stored point by data_seed)."""
    return {**options,
            "perturbation": OptionSpec(str, None, "perturbation", keyed_when_unset=False),
            "noise": OptionSpec(float, None, "positive", keyed_when_unset=False)}


# Options that define the map from factors to observations (what a perturbation was made for and must match);
# the others (n, data_seed of the grids) only choose the stored points and the split.
MAP_OPTIONS: dict[str, tuple[str, ...]] = {
    "synth_lin": ("ratio",), "synth_nonlin": ("data_seed",), "dsprites": ("path",), "shapes3d": ("path",),
}

DATASETS: dict[str, DatasetInfo] = {
    "synth_lin": DatasetInfo(
        "synth_lin", 2, "vector", (3,), "gaussian",
        _altered({
            "ratio": OptionSpec(float, 2.0, "positive"),  # stretch of one factor (thesis: 2; Table 3.4: 1/1.2/1.5)
            "n": OptionSpec(int, 50_000, "positive"),
            "data_seed": OptionSpec(int, 0),
        }),
    ),
    "synth_nonlin": DatasetInfo(
        "synth_nonlin", 2, "vector", (6,), "gaussian",
        _altered({"n": OptionSpec(int, 50_000, "positive"), "data_seed": OptionSpec(int, 0)}),
    ),
    "dsprites": DatasetInfo(
        "dsprites", 5, "image", (1, 64, 64), "bernoulli",
        _altered({"path": OptionSpec(str, None, "path"), "data_seed": OptionSpec(int, 0)}),  # data_seed: the split
    ),
    "shapes3d": DatasetInfo(
        "shapes3d", 6, "image", (3, 64, 64), "bernoulli",
        _altered({"path": OptionSpec(str, None, "path"), "data_seed": OptionSpec(int, 0)}),
    ),
    "mnist": DatasetInfo(
        "mnist", 0, "image", (1, 28, 28), "bernoulli",
        {"path": OptionSpec(str, None, "path", required=True), "data_seed": OptionSpec(int, 0)},
    ),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", 0, "image", (1, 28, 28), "bernoulli",
        {"path": OptionSpec(str, None, "path", required=True), "data_seed": OptionSpec(int, 0)},
    ),
}


def altered_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options of the alteration (perturbation, noise) set in `options` (unset ones left out)."""
    return {k: options[k] for k in ("perturbation", "noise") if options.get(k) is not None}


def base_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """`options` without the alteration options: what the unaltered dataset is opened with."""
    return {k: v for k, v in options.items() if k not in ("perturbation", "noise")}


def exclusive_cell(chosen: dict[str, Any], axes: dict[str, list[Any]]) -> bool:
    """Whether a study grid combination is left out because it sets both `perturbation` and `noise` while both
    axes also list null: `perturbation: [null, P]` × `noise: [null, ε]` spans the three variants of thesis Table
    4.2 (orig., mod., noise), not four. Both set with no null to pair them is a cell the validator refuses."""
    both = all(chosen.get(o) is not None for o in ("perturbation", "noise"))
    return both and all(None in axes.get(o, ()) for o in ("perturbation", "noise"))


def check_values(name: str, options: dict[str, Any], *, planned: bool = False) -> list[str]:
    """Problems with the values of dataset `name`'s alteration options, checked against each other and, for
    `perturbation`, against the folder (one line each, naming the option and the fix; [] when fine).

    Cheap: reads the folder's `perturbation.yaml` (no torch, no numpy); the spec validator calls it for every
    distinct option set before anything is scheduled, and `workers.data.load` before opening the data.
    """
    problems: list[str] = []
    info = DATASETS.get(name)
    if info is None or "perturbation" not in info.options:
        return problems
    noise, perturbation = options.get("noise"), options.get("perturbation")
    if noise is not None and perturbation is not None:
        problems.append(f"dataset {name!r}: options 'perturbation' and 'noise' exclude each other (thesis §4.3.3 "
                        "compares them side by side); set one of them per restart, as separate grid cells")
    if noise is not None:
        if isinstance(noise, bool) or not isinstance(noise, int | float) or not noise > 0:
            problems.append(f"dataset {name!r}: option 'noise' must be a positive number ε (uniform noise in "
                            f"[-ε, ε]; thesis: 0.1 dSprites, 0.175 Shapes3D), got {noise!r}")
        elif info.kind == "image" and noise > 1:
            problems.append(f"dataset {name!r}: option 'noise' must be at most 1 on images in [0, 1] (noise is "
                            f"reflected back into [0, 1]), got {noise!r}; the thesis uses 0.1 and 0.175")
    if perturbation is not None:
        from workers.perturbation.folder import check_perturbation

        problems += check_perturbation(name, options, planned=planned)
    return problems
