"""The perturbation folder `orthosweep perturb` writes and the `perturbation:` dataset option reads.

    <storage>/perturbations/<NAME>/        (or the path / URI given with --out)
        manipulation.pt      state dict of m (torch.load(..., weights_only=True)), float32
        perturbation.yaml    what it is: format, dataset and its options, ε, the source study and the run keys
                             (with their MIG) it was trained against, steps, initial and final losses, the
                             architecture, the normalisation, the quantisation and the sha256 of manipulation.pt
        contact_sheet.png    original, manipulation ε·m(w) and altered rows for a few stored points

A relative folder is read relative to the directory the command runs in (like `storage: ./results`); inside a
Ray Tune trial, which runs in its own trial directory, relative to the directory the trial's worker started in
(Tune's TUNE_ORIG_WORKING_DIR). On a cluster, give an absolute path on shared storage or an s3:// URI.

Importing this module is cheap (pyarrow's filesystem only; yaml when a folder is read): the study validator checks every
`perturbation:` value here before anything is scheduled. The network m is `perturbation_network.py`; the training
that writes a folder is above the data layer (`workers/perturbation/train.py`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workers.store.layout import join_uri, read_text

FORMAT = "orthosweep-perturbation/1"
META_FILE = "perturbation.yaml"
WEIGHTS_FILE = "manipulation.pt"
SHEET_FILE = "contact_sheet.png"
QUANT_LEVELS = 127  # m is stored per element as round(127·m)/127: int8 levels of ε/127 (see workers/data/perturbed.py)


def how_to_make(dataset: str) -> str:
    return (f"create it with `orthosweep perturb <storage>/<source study> --dataset {dataset} --epsilon E "
            "--name NAME` (it writes <storage>/perturbations/NAME) and point the option at that folder")


def resolve(value: str) -> str:
    """The folder `value` names, as a path or URI the store layer reads (see the module docstring)."""
    if "://" in value:
        return value.rstrip("/")
    p = Path(value).expanduser()
    if p.is_absolute():
        return str(p)
    candidates = [Path.cwd() / p]
    orig = os.environ.get("TUNE_ORIG_WORKING_DIR")
    if orig:
        candidates.append(Path(orig) / p)
    for c in candidates:
        if (c / META_FILE).exists():
            return str(c)
    return str(candidates[0])


class FolderError(ValueError):
    """A perturbation folder that is missing, unreadable or not made for the dataset asked for."""


class MissingFolderError(FolderError):
    """A perturbation folder that `orthosweep perturb` has not written (yet)."""


def read_meta(value: str) -> tuple[str, dict[str, Any]]:
    """(resolved folder, parsed perturbation.yaml) of a `perturbation:` value; FolderError saying what is wrong."""
    import yaml  # not at the top: `orthosweep status` imports this module and must not pay for yaml

    uri = resolve(value)
    try:
        text = read_text(join_uri(uri, META_FILE))
    except OSError as e:  # an unreachable object store, a permission problem
        raise FolderError(f"folder {value!r} cannot be read ({str(e).splitlines()[0]})") from e
    if text is None:
        exists = "://" in uri or Path(uri).is_dir()
        raise MissingFolderError(f"folder {value!r} " + (
            "holds no perturbation.yaml (not a folder `orthosweep perturb` wrote, or one it is still writing)"
            if exists else f"does not exist (looked for {uri})"))
    try:
        meta = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise FolderError(f"folder {value!r}: perturbation.yaml is not valid YAML ({e})".replace("\n", " ")) from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FolderError(f"folder {value!r}: perturbation.yaml is not an {FORMAT} file (format: "
                          f"{meta.get('format') if isinstance(meta, dict) else None!r})")
    return uri, meta


def check_perturbation(dataset: str, options: dict[str, Any], defaults: Mapping[str, Any],
                       map_options: tuple[str, ...], *, planned: bool = False) -> list[str]:
    """Problems with option `perturbation` of dataset `dataset` with `options` (the full option dict; `defaults`:
    the dataset's option defaults; `map_options`: the options that define its map from factors to observations,
    which the folder must have been made with). `planned`: a folder not written yet is not a problem (validate
    and --dry-run of a study whose perturbation is still to be made); anything else wrong with a folder that
    exists still is."""
    value = options["perturbation"]
    head = f"dataset {dataset!r}: option 'perturbation'"
    if not isinstance(value, str) or not value.strip():
        return [f"{head} must name a folder (path or URI) written by `orthosweep perturb`, got {value!r}"]
    try:
        uri, meta = read_meta(value)
    except MissingFolderError as e:
        return [] if planned else [f"{head}: {e}; {how_to_make(dataset)}"]
    except FolderError as e:
        return [f"{head}: {e}; {how_to_make(dataset)}"]
    problems = []
    made_for = meta.get("dataset")
    if made_for != dataset:
        problems.append(f"{head}: folder {value!r} was made for dataset {made_for!r}, not {dataset!r}; use a "
                        f"perturbation made for {dataset} ({how_to_make(dataset)})")
        return problems
    theirs = meta.get("dataset_options") or {}
    differ = [k for k in map_options
              if _norm(theirs.get(k, defaults.get(k))) != _norm(options.get(k, defaults.get(k)))]
    if differ:
        want = ", ".join(f"{k}={options.get(k, defaults.get(k))!r}" for k in differ)
        got = ", ".join(f"{k}={theirs.get(k, defaults.get(k))!r}" for k in differ)
        problems.append(f"{head}: folder {value!r} was made for {dataset} with {got}, this restart uses {want}; set "
                        f"the option(s) to the perturbation's values or make a perturbation from restarts trained "
                        f"with {want}")
    eps = meta.get("epsilon")
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps > 0:
        problems.append(f"{head}: folder {value!r}: perturbation.yaml has epsilon {eps!r}; expected a positive "
                        "number (re-run `orthosweep perturb`)")
    weights = (meta.get("weights") or {}).get("file", WEIGHTS_FILE)
    if "://" not in uri and not (Path(uri) / weights).is_file():
        problems.append(f"{head}: folder {value!r} lacks {weights} (incomplete copy?); copy the whole folder or "
                        "re-run `orthosweep perturb`")
    return problems


def _norm(v: Any) -> Any:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
