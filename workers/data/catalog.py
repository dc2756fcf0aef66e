"""The one registry of datasets: what the study spec validates against and what `workers.data.load` opens.

Each entry declares the dataset's shape, likelihood, the options it takes (each with its own check), the options
that define its map from factors to observations, and the function that opens it. Importing this module stays
cheap (numpy and pyarrow's filesystem; no torch, nothing generated or read): the spec validator and the
CLI use it before anything is scheduled.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import cars3d, dsprites, dsprites_variants, mnist, mpi3d, shapes3d, smallnorb, synthetic
from .base import Dataset
from .perturbation_folder import check_perturbation


@dataclass(frozen=True)
class OptionSpec:
    """One dataset option: its type, default, the check of its value and what the value is (for messages).

    check: "positive" (a number > 0), "path" (a file or folder the user gives), "perturbation" (a folder or URI
    `orthosweep perturb` wrote), "md5" (32 hex digits) or "" (any value of the type).
    """

    type: type
    default: Any
    check: str = ""
    required: bool = False
    keyed_when_unset: bool = True  # False: an unset (None) option is left out of the restart's options, so
    # options added later (perturbation, noise) leave the run keys of existing studies unchanged
    what: str = ""  # what the value names, e.g. "the official dsprites .npz"

    def coerce(self, value: Any) -> Any:
        """`value` as the option's type where that is lossless (an int for a float, a Path for a str)."""
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if self.type is str and isinstance(value, Path):
            return str(value)
        return value

    def problem(self, name: str, value: Any) -> str | None:
        """Why `value` is not allowed for option `name` ("option 'n' must be ..., got ...; <fix>"), or None.

        Checks presence, type and range; the files a path names are checked by the dataset (`check_values`)."""
        if value is None:
            if self.required:
                return f"option {name!r} is required: give {self.describe()} (official files are never downloaded)"
            return None
        value = self.coerce(value)
        if not isinstance(value, self.type) or isinstance(value, bool):
            return (f"option {name!r} must be {self.type.__name__}, got {value!r} ({type(value).__name__}); "
                    f"give {self.describe()}")
        if self.check == "positive" and not value > 0:
            return f"option {name!r} must be positive (> 0), got {value!r}"
        if self.check in ("path", "perturbation") and not value.strip():
            return f"option {name!r} must not be empty; give {self.describe()}"
        if self.check == "md5" and not re.fullmatch(r"[0-9a-fA-F]{32}", value):
            return f"option {name!r} must be an md5 digest (32 hex digits), got {value!r}"
        return None

    def describe(self) -> str:
        return self.what or {"path": "a path to the dataset's file(s)", "positive": "a positive number",
                             "perturbation": "a folder `orthosweep perturb` wrote"}.get(self.check,
                                                                                         f"a {self.type.__name__}")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    kind: str  # "vector" (N, D) or "image" (N, C, H, W)
    observation_shape: tuple[int, ...]
    likelihood: str  # "gaussian" or "bernoulli": the paper's choice for this data
    opener: Callable[..., Dataset]  # takes the options (without the alterations) as keyword arguments
    factors: tuple[tuple[str, int | None], ...]  # (name, classes; None = continuous); () = none (label only)
    options: dict[str, OptionSpec] = field(default_factory=dict)
    map_options: tuple[str, ...] = ()  # the options that define the map from factors to observations (what a
    # perturbation was made for and must match); the others (n, data_seed of the grids) only choose the stored
    # points and the split
    points: str = ""  # how many stored points, in words (`orthosweep datasets`)
    source: str = ""  # where the data come from, in words (`orthosweep datasets`)
    check_files: Callable[[dict[str, Any]], list[str]] | None = None  # problems with the files the (base)
    # options name, once they exist: layout, shapes, sizes, checksums (validate refuses bad files with them)

    @property
    def num_factors(self) -> int:
        """0: no generative factors (factor metrics are null)."""
        return len(self.factors)

    @property
    def defaults(self) -> dict[str, Any]:
        return {k: s.default for k, s in self.options.items()}


def _factors(names: list[str], sizes: list[int]) -> tuple[tuple[str, int | None], ...]:
    return tuple(zip(names, sizes, strict=True))


ALTERATIONS = ("perturbation", "noise")


def _altered(options: dict[str, OptionSpec]) -> dict[str, OptionSpec]:
    """`options` plus the two alterations of thesis §4.3 every dataset with factors offers (workers/data/perturbed.py):
    `perturbation` (x' = x + ε·m(w) from a folder `orthosweep perturb` wrote) and `noise` (uniform noise in
    [−ε, ε] per element, fixed per stored point by data_seed)."""
    return {**options,
            "perturbation": OptionSpec(str, None, "perturbation", keyed_when_unset=False),
            "noise": OptionSpec(float, None, "positive", keyed_when_unset=False,
                                what="a positive number ε (uniform noise in [-ε, ε]; thesis: 0.1 dSprites, 0.175 "
                                     "Shapes3D)")}


def _file(what: str, required: bool = False) -> OptionSpec:
    return OptionSpec(str, None, "path", required=required, what=what)


_SEED = OptionSpec(int, 0)  # data_seed: the split (and the synthetic sets' points, the dSprites variants' draws)
_CONTINUOUS = (("v0", None), ("v1", None))


def _official_grid(name: str, opener: Callable[..., Dataset], factors: tuple[tuple[str, int | None], ...],
                observation: tuple[int, ...], path: OptionSpec, check: Callable[[dict[str, Any]], list[str]],
                source: str, *, extra: dict[str, OptionSpec] | None = None) -> DatasetInfo:
    """An image grid read from official files the user gives (`path`, required)."""
    return DatasetInfo(name, "image", observation, "bernoulli", opener, factors,
                       _altered({"path": path, **(extra or {}), "data_seed": _SEED}), map_options=("path",),
                       points=str(math.prod(s or 1 for _, s in factors)), source=source,
                       check_files=check)


def _mpi3d(release: str) -> DatasetInfo:
    r = mpi3d.RELEASES[release]
    published = "checked against the published md5" if r.md5 else "no published checksum"
    return _official_grid(
        f"mpi3d_{release}", functools.partial(mpi3d.open_mpi3d, release),
        _factors(mpi3d.FACTOR_NAMES, list(r.factor_sizes)), (3, 64, 64),
        _file(f"the official MPI3D {release} .npz ({r.file})", required=True),
        lambda o: mpi3d.check_release(o["path"], release, o.get("checksum")),
        f"path= official {r.file} ({published})",
        extra={"checksum": OptionSpec(str, None, "md5", keyed_when_unset=False,
                                      what="the md5 of your copy when it is another release than the published one")})


def _variant(variant: str, opener: Callable[..., Dataset], extra: dict[str, OptionSpec] | None = None,
             check: Callable[[dict[str, Any]], list[str]] | None = None) -> DatasetInfo:
    name = f"{variant}_dsprites"
    return DatasetInfo(
        name, "image", (3, 64, 64), "bernoulli", opener, _factors(dsprites.FACTOR_NAMES, dsprites.FACTOR_SIZES),
        _altered({"path": _file(f"the official {dsprites.OFFICIAL_FILE}"), **(extra or {}), "data_seed": _SEED}),
        map_options=("path", *(extra or {}), "data_seed"), points="737280",
        source=f"dSprites (procedural, or path= official .npz) as disentanglement_lib's {variant}-dSprites"
               + (", image= the background" if extra else ""),
        check_files=lambda o: dsprites.check_official(o["path"]) + (check(o) if check else []))


DATASETS: dict[str, DatasetInfo] = {
    "synth_lin": DatasetInfo(
        "synth_lin", "vector", (3,), "gaussian", synthetic.SynthLin, _CONTINUOUS,
        _altered({
            "ratio": OptionSpec(float, 2.0, "positive"),  # stretch of one factor (thesis: 2; Table 3.4: 1/1.2/1.5)
            "n": OptionSpec(int, 50_000, "positive"),
            "data_seed": _SEED,
        }),
        map_options=("ratio",), points="n (default 50000)", source="generated from data_seed",
    ),
    "synth_nonlin": DatasetInfo(
        "synth_nonlin", "vector", (6,), "gaussian", synthetic.SynthNonlin, _CONTINUOUS,
        _altered({"n": OptionSpec(int, 50_000, "positive"), "data_seed": _SEED}),
        map_options=("data_seed",), points="n (default 50000)", source="generated from data_seed",
    ),
    "dsprites": DatasetInfo(
        "dsprites", "image", (1, 64, 64), "bernoulli", dsprites.open_dsprites,
        _factors(dsprites.FACTOR_NAMES, dsprites.FACTOR_SIZES),
        _altered({"path": _file(f"the official {dsprites.OFFICIAL_FILE}"), "data_seed": _SEED}),
        map_options=("path",), points="737280", source="procedural (on demand) or path= official .npz",
        check_files=lambda o: dsprites.check_official(o["path"]),
    ),
    "shapes3d": DatasetInfo(
        "shapes3d", "image", (3, 64, 64), "bernoulli", shapes3d.open_shapes3d,
        _factors(shapes3d.FACTOR_NAMES, shapes3d.FACTOR_SIZES),
        _altered({"path": _file(f"the official {shapes3d.OFFICIAL_FILE}"), "data_seed": _SEED}),
        map_options=("path",), points="480000", source="procedural (on demand) or path= official 3dshapes.h5",
        check_files=lambda o: shapes3d.check_official(o["path"]),
    ),
    "mnist": DatasetInfo(
        "mnist", "image", (1, 28, 28), "bernoulli", mnist.open_mnist, (),
        {"path": _file("the MNIST IDX files (a folder or one file) or an .npz", required=True), "data_seed": _SEED},
        points="as in the files", source="path= IDX directory/file or .npz (labels kept)",
    ),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", "image", (1, 28, 28), "bernoulli", mnist.open_fashion_mnist, (),
        {"path": _file("the Fashion-MNIST IDX files (a folder or one file) or an .npz", required=True),
         "data_seed": _SEED},
        points="as in the files", source="path= IDX directory/file or .npz (labels kept)",
    ),
    "color_dsprites": _variant("color", dsprites_variants.open_color_dsprites),
    "noisy_dsprites": _variant("noisy", dsprites_variants.open_noisy_dsprites),
    "scream_dsprites": _variant(
        "scream", dsprites_variants.open_scream_dsprites,
        {"image": _file("the background image (disentanglement_lib's scream.jpg)", required=True)},
        lambda o: dsprites_variants.check_scream_image(o["image"])),
    "smallnorb": _official_grid(
        "smallnorb", smallnorb.open_smallnorb, _factors(smallnorb.FACTOR_NAMES, smallnorb.FACTOR_SIZES), (1, 64, 64),
        _file(smallnorb.EXPECTED, required=True), lambda o: smallnorb.check_folder_files(o["path"]),
        "path= folder of the six official .mat[.gz] files (the .gz checked against the published md5)"),
    "cars3d": _official_grid(
        "cars3d", cars3d.open_cars3d, _factors(cars3d.FACTOR_NAMES, cars3d.FACTOR_SIZES), (3, 64, 64),
        _file(cars3d.EXPECTED, required=True), lambda o: cars3d.check_cars_folder(o["path"]),
        "path= official cars folder of 183 car_NNN_mesh.mat (no published checksum)"),
    **{f"mpi3d_{r}": _mpi3d(r) for r in mpi3d.RELEASES},
}


def altered_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options of the alteration (perturbation, noise) set in `options` (unset ones left out)."""
    return {k: options[k] for k in ALTERATIONS if options.get(k) is not None}


def base_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """`options` without the alteration options: what the unaltered dataset is opened with."""
    return {k: v for k, v in options.items() if k not in ALTERATIONS}


def exclusive_cell(chosen: dict[str, Any], axes: dict[str, list[Any]]) -> bool:
    """Whether a study grid combination is left out because it sets both `perturbation` and `noise` while both
    axes also list null: `perturbation: [null, P]` × `noise: [null, ε]` spans the three variants of thesis Table
    4.2 (orig., mod., noise), not four. Both set with no null to pair them is a cell the validator refuses."""
    both = all(chosen.get(o) is not None for o in ALTERATIONS)
    return both and all(None in axes.get(o, ()) for o in ALTERATIONS)


def absent_paths(name: str, options: dict[str, Any]) -> list[str]:
    """The values of dataset `name`'s path options in `options` that name nothing on this machine."""
    info = DATASETS.get(name)
    if info is None:
        return []
    return [str(options[k]) for k, spec in info.options.items()
            if spec.check == "path" and isinstance(options.get(k), str) and not Path(options[k]).expanduser().exists()]


def check_values(name: str, options: dict[str, Any], *, planned: bool = False) -> list[str]:
    """Problems with the values of dataset `name`'s options checked against each other and against what they
    name (a path: present; a `perturbation:` folder: present, made for this dataset and these options), one line
    each naming the option and the fix; [] when fine. Each value's own type and range are `OptionSpec.problem`'s.
    `planned`: a path or folder that does not exist yet is not a problem (validate and --dry-run).

    Cheap: reads the folder's `perturbation.yaml` (no torch); the spec validator calls it for every distinct
    option set before anything is scheduled, and `workers.data.load` before opening the data.
    """
    problems: list[str] = []
    info = DATASETS.get(name)
    if info is None:
        return problems
    absent = absent_paths(name, options)
    if not planned:
        for value in absent:
            key = next(k for k, s in info.options.items() if s.check == "path" and options.get(k) == value)
            problems.append(f"dataset {name!r}: option {key!r}: {value!r} does not exist; point it at "
                            f"{info.options[key].describe()}")
    if info.check_files is not None and not absent:
        problems += [f"dataset {name!r}: {p}" for p in info.check_files(base_options(name, options))]
    if "perturbation" not in info.options:
        return problems
    noise, perturbation = options.get("noise"), options.get("perturbation")
    if noise is not None and perturbation is not None:
        problems.append(f"dataset {name!r}: options 'perturbation' and 'noise' exclude each other (thesis §4.3.3 "
                        "compares them side by side); set one of them per restart, as separate grid cells")
    if noise is not None and info.kind == "image" and info.options["noise"].problem("noise", noise) is None \
            and noise > 1:
        problems.append(f"dataset {name!r}: option 'noise' must be at most 1 on images in [0, 1] (noise is "
                        f"reflected back into [0, 1]), got {noise!r}; the thesis uses 0.1 and 0.175")
    if perturbation is not None:
        problems += check_perturbation(name, options, info.defaults, info.map_options, planned=planned)
    return problems
