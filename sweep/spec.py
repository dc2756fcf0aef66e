"""The study spec: one schema, validated once, expanded into restarts and Tune trials (design.md §3).

`load_study(path)` is the only entry point that reads a study file; everything downstream receives a
validated `Study`. Every problem is reported as a `SpecError` whose lines each name the field, the bad
value and what is allowed; the CLI prints them and exits with code 2 before Ray or storage is touched.
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from sweep import defaults as D
from sweep.errors import SpecError
from workers.data.catalog import DATASETS, absent_paths, check_values, exclusive_cell
from workers.data.perturbation_folder import MissingFolderError, read_meta
from workers.metrics.registry import METRICS
from workers.models.catalog import ACTIVATIONS, ARCHITECTURES, LIKELIHOODS, OPTIMIZERS
from workers.models.objectives import OBJECTIVES
from workers.store.layout import join_uri
from workers.trial import Arch, EvalSettings, Optimizer, RestartConfig, TrialSpec, stable_key

__all__ = ["Restart", "SpecError", "Study", "StudySize", "StudySpec", "TrialSpec", "load_study", "stable_key",
           "study_size", "validate_study"]


# --------------------------------------------------------------------------------------------------
# Schema (structure and types). Semantic checks that need the catalogs are in `_check_semantics`.
# --------------------------------------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class TrainSpec(_Strict):
    """Training settings. `None` means: the paper default for the dataset (sweep.defaults)."""

    epochs: int | None = None
    batch_size: int | None = None
    checkpoints: list[int] | None = None  # epochs at which metrics are recorded; 0 = before training
    seeds_per_trial: int | None = None  # S seeds trained as one batched model per Tune trial
    arch: Literal["linear", "mlp", "conv"] | None = None
    encoder: list[int] | None = None  # hidden widths (mlp)
    decoder: list[int] | None = None
    encoder_act: Literal["relu", "tanh", "none"] | None = None
    decoder_act: Literal["relu", "tanh", "none"] | None = None
    latent_dim: int | None = None
    optimizer: Literal["adam", "adagrad"] | None = None
    lr: float | None = None
    likelihood: Literal["gaussian", "bernoulli"] | None = None
    max_train: int | None = None  # use only the first N training points (declared reduced variants)
    trace_every: int | None = None  # steps between training-trace rows
    precision: Literal["fp32", "tf32", "bf16"] | None = None  # tf32, bf16: CUDA only (workers.device)
    cuda_graphs: bool | None = None  # replay each training step from a CUDA graph (workers.step_graph; CUDA only)
    # live training curves besides the Parquet trace: TensorBoard event files under <study>/tensorboard/,
    # MLflow (file store <study>/mlruns) and W&B (offline, <study>/wandb) through Ray Tune's logger callbacks
    loggers: list[Literal["tensorboard", "mlflow", "wandb"]] | None = None


class EvalSpec(_Strict):
    metrics: list[str] | None = None
    n_eval: int | None = None  # held-out points for DtO, DS, MIG, polarised regime
    n_train_supervised: int | None = None  # DCI / SAP training points (disentanglement_lib: 10,000)
    n_test_supervised: int | None = None  # DCI / SAP test points (disentanglement_lib: 5,000)
    # inline | async | auto (async when trials get a GPU, design.md §6; see EvalSettings.mode)
    mode: Literal["auto", "inline", "async"] | None = None


class OverrideSpec(TrainSpec):
    """One entry of `overrides`: any train setting (validated exactly as under `train`), `latent_dim` as an
    axis (a list), and model hyperparameters or dataset options as axes (checked against the catalogs)."""

    model_config = ConfigDict(extra="allow", strict=False)
    latent_dim: int | list[int] | None = None

    def train_settings(self) -> dict[str, Any]:
        """The train settings this override sets (only those given)."""
        return {k: getattr(self, k) for k in self.model_fields_set if k in TrainSpec.model_fields}

    def axes(self) -> dict[str, Any]:
        """Hyperparameters and dataset options this override sets (not train settings)."""
        return dict(self.model_extra or {})


class ResourcesSpec(_Strict):
    cpu: float = 1.0
    gpu: float = 0.0  # fractional GPUs allowed (0.25 = four trials per GPU)
    max_concurrent_trials: int | None = None
    max_failures: int = 2  # Tune retries of a trial from its last checkpoint
    max_restarts: int = 1_000_000  # a study counting more restarts is refused before it is expanded


class StudySpec(_Strict):
    study: str
    storage: str = "./results"
    grid: dict[str, Any]
    overrides: dict[str, OverrideSpec] = {}
    train: TrainSpec = TrainSpec()
    eval: EvalSpec = EvalSpec()
    resources: ResourcesSpec = ResourcesSpec()

    @field_validator("study")
    @classmethod
    def _study_name(cls, v: str) -> str:
        if not v or not all(c.isalnum() or c in "-_." for c in v) or v.startswith("."):
            raise ValueError("must be a non-empty name of letters, digits, '-', '_' or '.' (it names a folder)")
        return v


# --------------------------------------------------------------------------------------------------
# Validated, resolved study
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Restart:
    """One restart: a fully resolved configuration plus its seed."""

    run_key: str
    config_key: str
    seed: int
    config: RestartConfig


@dataclass
class Study:
    spec: StudySpec
    restarts: list[Restart]
    trials: list[TrialSpec]
    eval: EvalSettings
    source: str = "study"
    normalized: dict[str, Any] = field(default_factory=dict)
    folder: str | None = None  # the study folder when read from one (a copied or renamed folder keeps its path)
    planned: tuple[str, ...] = ()  # perturbation folders still to be written (validated with planned=True)
    absent_files: tuple[str, ...] = ()  # dataset files (path options) not on this machine (planned=True)

    @property
    def name(self) -> str:
        return self.spec.study

    @property
    def storage(self) -> str:
        return self.spec.storage

    @property
    def study_uri(self) -> str:
        """Where this study's Parquet store lives: `<storage>/<study>`, or the folder it was read from."""
        return self.folder or join_uri(self.spec.storage, self.spec.study)

    def with_storage(self, storage: str) -> Study:
        data = self.spec.model_dump()
        data["storage"] = storage
        return validate_study(data, source=self.source, base_dir=None)


# --------------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------------

def load_study(path: str | os.PathLike[str], *, storage: str | None = None, planned: bool = False,
               overrides: dict[str, Any] | None = None) -> Study:
    """Read, validate and expand a study file. Raises SpecError (never touches Ray or storage).
    `planned`: `perturbation:` folders not written yet are allowed and listed in `Study.planned`
    (validate, --dry-run); `submit` refuses them. `overrides`: fields deep-merged over the file's (as
    `extends:` merges: mappings key by key, lists and scalars replace), e.g. {"train": {"epochs": 2}}."""
    p = Path(path)
    src = str(p)
    if not p.exists():
        raise SpecError([f"file {src!r} does not exist"], src)
    if p.is_dir():
        raise SpecError([f"{src!r} is a directory; expected a study YAML file"], src)
    try:
        text = p.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError([f"cannot read {src!r}: {e}"], src) from e
    except yaml.YAMLError as e:
        raise SpecError([f"not valid YAML: {e}".replace("\n", " ")], src) from e
    if not isinstance(data, dict):
        raise SpecError([f"the file must hold a mapping with keys study, grid, ...; got {type(data).__name__}"],
                        src)
    data = _resolve_extends(data, p, seen=(p.resolve(),))
    if overrides:
        data = deep_merge(data, overrides)
    if storage is not None:
        data["storage"] = storage
    return validate_study(data, source=src, base_dir=p.parent, planned=planned)


def _resolve_extends(data: dict[str, Any], path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """`extends: other.yaml` (relative to this file): start from that study and deep-merge this one on top.

    Mappings merge key by key; lists and scalars replace. This is how a declared reduced variant
    (`*_cpu.yaml`) inherits the full paper study and states only what it changes.
    """
    parent_ref = data.pop("extends", None)
    if parent_ref is None:
        return data
    if not isinstance(parent_ref, str):
        raise SpecError([f"field 'extends': got {parent_ref!r}; expected the path of another study file"], str(path))
    parent_path = (path.parent / parent_ref).resolve()
    if parent_path in seen:
        raise SpecError([f"field 'extends': {parent_ref!r} extends itself (cycle through {parent_path})"], str(path))
    if not parent_path.is_file():
        raise SpecError([f"field 'extends': {parent_ref!r} does not exist (looked for {parent_path})"], str(path))
    try:
        parent = yaml.safe_load(parent_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SpecError([f"field 'extends': {parent_ref!r} is not valid YAML: {e}".replace("\n", " ")],
                        str(path)) from e
    if not isinstance(parent, dict):
        raise SpecError([f"field 'extends': {parent_ref!r} does not hold a study mapping"], str(path))
    parent = _resolve_extends(parent, parent_path, seen + (parent_path,))
    return deep_merge(parent, data)


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`: mappings merge key by key, lists and scalars replace (neither argument changes)."""
    out = dict(base)
    for k, v in top.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def validate_study(data: dict[str, Any], *, source: str = "study", base_dir: Path | None = None,
                   planned: bool = False) -> Study:
    """Validate a study mapping (as parsed from YAML) and expand it into restarts and trials (`planned`: see
    `load_study`)."""
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as e:
        raise SpecError([_pydantic_problem(err) for err in e.errors()], source) from None
    problems: list[str] = []
    cells = _check_semantics(spec, problems)
    if problems:
        raise SpecError(problems, source)
    problems += size_problems(spec, count_study(spec, cells))
    if problems:
        raise SpecError(problems, source)
    restarts, trials, eval_cfg = _expand(spec, cells)
    problems += _check_dataset_values(restarts, planned)
    if problems:
        raise SpecError(problems, source)
    normalized = spec.model_dump()
    normalized["overrides"] = {k: v.model_dump(exclude_unset=True) for k, v in spec.overrides.items()}
    missing = _planned_folders(restarts) if planned else ()
    absent = _absent_files(restarts) if planned else ()
    return Study(spec=spec, restarts=restarts, trials=trials, eval=eval_cfg, source=source,
                 normalized=normalized, planned=missing, absent_files=absent)


@dataclass(frozen=True)
class StudySize:
    """How big a study is, counted from its grid without expanding it."""

    configs: int  # configurations (grid combinations over all (dataset, model) cells)
    seeds: int  # seeds per configuration
    restarts: int  # configurations × seeds
    trials: int  # Tune trials: configurations × seed blocks


def count_study(spec: StudySpec, cells: list[_Cell]) -> StudySize:
    """Restarts and trials of a validated grid, by arithmetic on the axis lengths (constant memory, no
    configuration built): per (dataset, model) cell, the product of its axis lengths less the combinations
    `exclusive_cell` leaves out, times the seeds (trials: times the seed blocks). Exact, unless two grid
    combinations resolve to the same configuration (an axis value listed twice), which expansion counts once."""
    seeds = spec.grid["seeds"]
    n_seeds = seeds if _is_int(seeds) else len(seeds)
    configs = trials = 0
    for cell in cells:
        combos = math.prod(len(v) for v in cell.axes.values())
        if all(None in cell.axes.get(o, ()) for o in ("perturbation", "noise")):
            both_set = math.prod(len(v) - (v.count(None) if k in ("perturbation", "noise") else 0)
                                 for k, v in cell.axes.items())
            combos -= both_set
        configs += combos
        trials += combos * -(-n_seeds // cell.train["seeds_per_trial"])
    return StudySize(configs, n_seeds, configs * n_seeds, trials)


def study_size(spec: StudySpec) -> StudySize:
    """`count_study` of a spec that passed the schema (raises SpecError if its semantics do not)."""
    problems: list[str] = []
    cells = _check_semantics(spec, problems)
    if problems:
        raise SpecError(problems)
    return count_study(spec, cells)


def size_problems(spec: StudySpec, size: StudySize) -> list[str]:
    """The line refusing a study above `resources.max_restarts` (none when within it)."""
    limit = spec.resources.max_restarts
    if size.restarts <= limit:
        return []
    return [f"field 'grid.seeds': {size.seeds:,} seeds × {size.configs:,} configurations = {size.restarts:,} "
            f"restarts ({size.trials:,} trials), above the limit of {limit:,} restarts (field "
            "'resources.max_restarts'); check the seed count and the grid's axes, or raise resources.max_restarts "
            "if the study really is this large"]


def _planned_folders(restarts: list[Restart]) -> tuple[str, ...]:
    """The `perturbation:` folders of these restarts that `orthosweep perturb` has not written yet."""
    missing = set()
    for value in {r.config.dataset_options.get("perturbation") for r in restarts} - {None}:
        try:
            read_meta(str(value))
        except MissingFolderError:
            missing.add(str(value))
    return tuple(sorted(missing))


def _absent_files(restarts: list[Restart]) -> tuple[str, ...]:
    """The dataset files (path options) of these restarts that do not exist on this machine."""
    return tuple(sorted({p for r in restarts for p in absent_paths(r.config.dataset, r.config.dataset_options)}))


def _check_dataset_values(restarts: list[Restart], planned: bool = False) -> list[str]:
    """The data layer's own checks of option values against each other and the files they name (a
    `perturbation:` folder: present, made for this dataset and these options), once per distinct option set."""
    seen: set[str] = set()
    problems: list[str] = []
    for r in restarts:
        key = stable_key([r.config.dataset, r.config.dataset_options])
        if key not in seen:
            seen.add(key)
            problems += [p for p in check_values(r.config.dataset, r.config.dataset_options, planned=planned)
                         if p not in problems]
    return problems


def _pydantic_problem(err: dict[str, Any]) -> str:
    loc = ".".join(str(x) for x in err["loc"])
    value = err.get("input")
    if err["type"] == "extra_forbidden":
        parent = ".".join(str(x) for x in err["loc"][:-1]) or "top level"
        return unknown_name(loc, f"key in {parent}", None, sorted(_allowed_keys(err["loc"][:-1])),
                            allowed_label="allowed keys")
    if err["type"] == "missing":
        return f"field {loc!r}: required but missing"
    return f"field {loc!r}: got {value!r}; {err['msg']}"


def _allowed_keys(parent_loc: tuple[Any, ...]) -> list[str]:
    models = {(): StudySpec, ("train",): TrainSpec, ("eval",): EvalSpec, ("resources",): ResourcesSpec}
    m = models.get(tuple(parent_loc))
    return list(m.model_fields) if m else []


def _closest(name: str, options: list[str]) -> str | None:
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return match[0] if match else None


def unknown_name(field_name: str, what: str, value: Any, allowed: list[str], *, allowed_label: str = "allowed",
                 hint_from: list[str] | None = None) -> str:
    """The one message for a name that is not allowed: field, value, the closest allowed name, the list.

    value None: the name is the field's last part (an unknown key). hint_from: where the closest name is
    looked for, when that differs from `allowed`.
    """
    name = str(value) if value is not None else field_name.rsplit(".", 1)[-1]
    hint = _closest(name, hint_from if hint_from is not None else allowed)
    shown = f" {value!r}" if value is not None else ""
    return (f"field {field_name!r}: unknown {what}{shown}{f' (did you mean {hint!r}?)' if hint else ''}"
            + (f"; {allowed_label}: {', '.join(allowed)}" if allowed else ""))


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


TRAIN_FIELDS = set(TrainSpec.model_fields)
AXIS_FIELDS = {"latent_dim"}  # train settings that may also be swept as grid axes


@dataclass
class _Cell:
    """A (dataset, model) pair with its axes (lists) and scalar train settings after overrides."""

    dataset: str
    model: str
    axes: dict[str, list[Any]]
    train: dict[str, Any]


def _check_semantics(spec: StudySpec, problems: list[str]) -> list[_Cell]:
    grid = dict(spec.grid)
    all_hparams = {h for o in OBJECTIVES.values() for h in o.hparams}
    all_options = {k for d in DATASETS.values() for k in d.options}

    datasets = _as_list(grid.pop("dataset", None)) if "dataset" in grid else []
    models = _as_list(grid.pop("model", None)) if "model" in grid else []
    seeds_raw = grid.pop("seeds", None)
    if not datasets or datasets == [None]:
        problems.append(f"field 'grid.dataset': missing or empty; allowed: {', '.join(DATASETS)}")
        datasets = []
    if not models or models == [None]:
        problems.append(f"field 'grid.model': missing or empty; allowed: {', '.join(OBJECTIVES)}")
        models = []
    problems += [unknown_name("grid.dataset", "dataset", d, list(DATASETS)) for d in datasets if d not in DATASETS]
    problems += [unknown_name("grid.model", "model", m, list(OBJECTIVES)) for m in models if m not in OBJECTIVES]
    if len(set(map(str, datasets))) != len(datasets) or len(set(map(str, models))) != len(models):
        problems.append("field 'grid.dataset'/'grid.model': duplicate entries; list each name once")

    # seeds
    if seeds_raw is None:
        problems.append("field 'grid.seeds': missing; give a count (e.g. 10) or an explicit list of integers")
    elif _is_int(seeds_raw):
        if seeds_raw < 1:
            problems.append(f"field 'grid.seeds': got {seeds_raw}; a count must be >= 1")
    elif isinstance(seeds_raw, list):
        if not seeds_raw:
            problems.append("field 'grid.seeds': empty list; give at least one integer seed")
        bad = [s for s in seeds_raw if not _is_int(s) or s < 0]
        if bad:
            problems.append(f"field 'grid.seeds': got {bad!r}; seeds must be non-negative integers")
        elif len(set(seeds_raw)) != len(seeds_raw):
            problems.append(f"field 'grid.seeds': duplicate seeds in {seeds_raw!r}; each seed once")
    else:
        problems.append(f"field 'grid.seeds': got {seeds_raw!r}; expected a positive integer count or a list of "
                        "non-negative integers")

    # remaining grid keys are axes
    for k, v in grid.items():
        vals = _as_list(v)
        if not vals:
            problems.append(f"field 'grid.{k}': empty list; give at least one value")
        if k in all_hparams:
            takers = [m for m in models if m in OBJECTIVES and k in OBJECTIVES[m].hparams]
            if models and not takers:
                problems.append(f"field 'grid.{k}': no model in grid.model takes hyperparameter {k!r}; models "
                                f"that do: {', '.join(m for m in OBJECTIVES if k in OBJECTIVES[m].hparams)}")
        elif k in all_options:
            takers = [d for d in datasets if d in DATASETS and k in DATASETS[d].options]
            if datasets and not takers:
                problems.append(f"field 'grid.{k}': no dataset in grid.dataset takes option {k!r}")
        elif k in AXIS_FIELDS:
            pass
        else:
            problems.append(unknown_name(
                f"grid.{k}", "grid key", None,
                [f"dataset, model, seeds, a model hyperparameter ({', '.join(sorted(all_hparams))}), a dataset "
                 f"option ({', '.join(sorted(all_options))}) or latent_dim"],
                hint_from=sorted(all_hparams | all_options | AXIS_FIELDS | {"dataset", "model", "seeds"})))

    # overrides
    for key, ov in spec.overrides.items():
        if key not in DATASETS and key not in OBJECTIVES and not (
            "/" in key and key.split("/", 1)[0] in DATASETS and key.split("/", 1)[1] in OBJECTIVES
        ):
            problems.append(f"field 'overrides.{key}': not a dataset, a model or 'dataset/model'; datasets: "
                            f"{', '.join(DATASETS)}; models: {', '.join(OBJECTIVES)}")
            continue
        d_name = key.split("/")[0] if key.split("/")[0] in DATASETS else None
        m_name = key.split("/")[-1] if key.split("/")[-1] in OBJECTIVES else None
        for k in ov.axes():
            if k in all_hparams:
                if m_name and k not in OBJECTIVES[m_name].hparams:
                    problems.append(f"field 'overrides.{key}.{k}': model {m_name!r} does not take hyperparameter "
                                    f"{k!r}; it takes: {', '.join(OBJECTIVES[m_name].hparams) or 'none'}")
            elif k in all_options:
                if d_name and k not in DATASETS[d_name].options:
                    problems.append(f"field 'overrides.{key}.{k}': dataset {d_name!r} has no option {k!r}; "
                                    f"options: {', '.join(DATASETS[d_name].options) or 'none'}")
            else:
                problems.append(unknown_name(f"overrides.{key}.{k}", "setting", None, [],
                                             hint_from=sorted(all_hparams | all_options | TRAIN_FIELDS)))

    # eval
    problems += [unknown_name("eval.metrics", "metric", m, list(METRICS))
                 for m in spec.eval.metrics or [] if m not in METRICS]
    for name in ("n_eval", "n_train_supervised", "n_test_supervised"):
        v = getattr(spec.eval, name)
        if v is not None and v < 10:
            problems.append(f"field 'eval.{name}': got {v}; must be >= 10")

    # resources
    r = spec.resources
    if r.cpu <= 0:
        problems.append(f"field 'resources.cpu': got {r.cpu}; must be > 0")
    if r.gpu < 0:
        problems.append(f"field 'resources.gpu': got {r.gpu}; must be >= 0 (fractions such as 0.25 allowed)")
    if r.gpu > 1 and r.gpu != int(r.gpu):
        problems.append(f"field 'resources.gpu': got {r.gpu}; above 1 only whole GPUs are allowed")
    if r.max_concurrent_trials is not None and r.max_concurrent_trials < 1:
        problems.append(f"field 'resources.max_concurrent_trials': got {r.max_concurrent_trials}; must be >= 1")
    if r.max_failures < 0:
        problems.append(f"field 'resources.max_failures': got {r.max_failures}; must be >= 0")
    if r.max_restarts < 1:
        problems.append(f"field 'resources.max_restarts': got {r.max_restarts}; must be >= 1")

    _check_storage(spec.storage, problems)
    if problems:
        return []

    cells = []
    for d in datasets:
        for m in models:
            cell = _resolve_cell(spec, d, m, grid, problems)
            if cell is not None:
                cells.append(cell)
    return cells


def _check_storage(storage: str, problems: list[str]) -> None:
    """Storage must be creatable; checked without writing anything."""
    if "://" in storage:
        scheme = storage.split("://", 1)[0]
        if scheme not in ("s3", "gs", "gcs", "abfs", "hdfs", "file"):
            problems.append(f"field 'storage': unsupported URI scheme {scheme!r}; use a local path or s3://, gs://, "
                            "abfs://, hdfs://")
        if scheme != "file":
            return
        storage = storage.split("://", 1)[1]
    p = Path(storage).expanduser().absolute()
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        problems.append(f"field 'storage': {storage!r} cannot be created: {str(probe)!r} exists and is not a "
                        "directory")
    elif not os.access(probe, os.W_OK | os.X_OK):
        problems.append(f"field 'storage': {storage!r} cannot be created: {str(probe)!r} is not writable")


def _resolve_cell(spec: StudySpec, dataset: str, model: str, grid: dict[str, Any],
                  problems: list[str]) -> _Cell | None:
    obj = OBJECTIVES[model]
    ds = DATASETS[dataset]
    train: dict[str, Any] = {**D.TRAIN_DEFAULTS, **D.DATASET_DEFAULTS[dataset], "likelihood": ds.likelihood}
    train.update({k: v for k, v in spec.train.model_dump().items() if v is not None})
    axes: dict[str, list[Any]] = {}
    for k, v in grid.items():
        if (k in obj.hparams) or (k in ds.options) or k in AXIS_FIELDS:
            axes[k] = _as_list(v)
    for key in (dataset, model, f"{dataset}/{model}"):
        ov = spec.overrides.get(key)
        if ov is None:
            continue
        settings = ov.train_settings()
        if "latent_dim" in settings:  # latent_dim is also an axis: a list sweeps it
            axes["latent_dim"] = _as_list(settings.pop("latent_dim"))
        train.update(settings)
        # hyperparameters of other models in a dataset override are simply not taken by this model
        axes.update({k: _as_list(v) for k, v in ov.axes().items() if k in obj.hparams or k in ds.options})
    where = f"{dataset}/{model}"
    # hyperparameters: defaults, range checks
    for h, hp in obj.hparams.items():
        if h not in axes:
            continue
        for v in axes[h]:
            if not _is_number(v):
                problems.append(f"field '{h}' ({where}): got {v!r}; expected a number")
            elif not hp.allows(v):
                problems.append(f"field '{h}' ({where}): got {v!r}; must be {hp.describe_range()}")
            elif hp.integer and not float(v).is_integer():
                problems.append(f"field '{h}' ({where}): got {v!r}; expected an integer")
            elif hp.counts_factors and v != -1 and not 1 <= v < max(ds.num_factors, 2):
                problems.append(f"field '{h}' ({where}): got {v!r}; must be -1 (random) or 1..{ds.num_factors - 1}"
                                f" (factors changed in a pair; {dataset} has {ds.num_factors})")
    if obj.paired and ds.num_factors == 0:
        problems.append(f"field 'grid.model' ({where}): {model!r} trains on pairs that share ground-truth factors; "
                        f"dataset {dataset!r} has none (use one that has: "
                        f"{', '.join(d for d, i in DATASETS.items() if i.num_factors)})")
    for o, osp in ds.options.items():  # each value's type and range; what a path names: _check_dataset_values
        if o not in axes:
            if osp.required:
                problems.append(f"field 'overrides.{dataset}.{o}': dataset {dataset!r}: {osp.problem(o, None)}")
            continue
        for v in axes[o]:
            problem = osp.problem(o, v)
            if problem is not None:
                problems.append(f"field '{o}' ({where}): {problem}")
    if "latent_dim" in axes:
        for v in axes["latent_dim"]:
            if not _is_int(v) or v < 1:
                problems.append(f"field 'latent_dim' ({where}): got {v!r}; must be a positive integer")
    _check_train(train, where, problems)
    return _Cell(dataset, model, axes, train)


def _check_train(t: dict[str, Any], where: str, problems: list[str]) -> None:
    def bad(name: str, msg: str) -> None:
        problems.append(f"field 'train.{name}' ({where}): got {t.get(name)!r}; {msg}")

    for name in ("epochs", "batch_size", "seeds_per_trial", "latent_dim", "trace_every"):
        v = t.get(name)
        if not _is_int(v) or v < (0 if name == "epochs" else 1):
            bad(name, "must be a positive integer" if name != "epochs" else "must be an integer >= 0")
    if t.get("max_train") is not None and (not _is_int(t["max_train"]) or t["max_train"] < t.get("batch_size", 1)):
        bad("max_train", "must be an integer >= batch_size (or omitted for the full training split)")
    if not _is_number(t.get("lr")) or t["lr"] <= 0:
        bad("lr", "must be a number > 0")
    for name, allowed in (("arch", ARCHITECTURES), ("encoder_act", ACTIVATIONS), ("decoder_act", ACTIVATIONS),
                          ("optimizer", OPTIMIZERS), ("likelihood", LIKELIHOODS)):
        if t.get(name) not in allowed:
            bad(name, f"allowed: {', '.join(allowed)}")
    for name in ("encoder", "decoder"):
        v = t.get(name)
        if not isinstance(v, list) or any(not _is_int(w) or w < 1 for w in v):
            bad(name, "must be a list of positive layer widths (may be empty)")
    if t.get("arch") == "mlp" and not t.get("encoder") and not t.get("decoder"):
        bad("arch", "an mlp needs hidden widths in train.encoder / train.decoder (use 'linear' for none)")
    epochs = t.get("epochs")
    cps = t.get("checkpoints")
    if cps is not None and _is_int(epochs):
        if not cps:
            bad("checkpoints", "give at least one epoch (e.g. [0, epochs])")
        beyond = [c for c in cps if not _is_int(c) or c < 0 or c > epochs]
        if beyond:
            problems.append(f"field 'train.checkpoints' ({where}): {beyond!r} outside 0..epochs={epochs}; "
                            "every checkpoint must be an integer epoch between 0 and train.epochs")
        elif len(set(cps)) != len(cps):
            bad("checkpoints", "duplicate epochs; list each once")


def _expand(spec: StudySpec, cells: list[_Cell]) -> tuple[list[Restart], list[TrialSpec], EvalSettings]:
    seeds_raw = spec.grid["seeds"]
    seeds = list(range(seeds_raw)) if _is_int(seeds_raw) else sorted(seeds_raw)
    given = {k: v for k, v in spec.eval.model_dump().items() if v is not None}
    eval_cfg = EvalSettings.from_dict({**D.EVAL_DEFAULTS, **given,
                                       "mode": D.eval_mode(given.get("mode", "auto"), spec.resources.gpu)})
    restarts: list[Restart] = []
    trials: list[TrialSpec] = []
    seen: set[str] = set()
    for cell in cells:
        ds, obj = DATASETS[cell.dataset], OBJECTIVES[cell.model]
        axis_names = sorted(cell.axes)
        for combo in itertools.product(*(cell.axes[a] for a in axis_names)):
            chosen = dict(zip(axis_names, combo, strict=True))
            if exclusive_cell(chosen, cell.axes):
                continue
            hparams: dict[str, float] = {}
            for h, hp in obj.hparams.items():  # declaration order: a default may read those before it
                v = chosen.get(h)
                hparams[h] = float(v) if v is not None else hp.resolve(D.hparam_context(cell.dataset, hparams))
            options = {o: chosen.get(o, osp.default) for o, osp in ds.options.items()
                       if osp.keyed_when_unset or chosen.get(o) is not None}
            options = {o: (float(v) if ds.options[o].type is float and v is not None else v)
                       for o, v in options.items()}
            t = dict(cell.train)
            if "latent_dim" in chosen:
                t["latent_dim"] = chosen["latent_dim"]
            epochs = t["epochs"]
            checkpoints = tuple(sorted(set(t["checkpoints"] if t.get("checkpoints") is not None else [0]) | {epochs}))
            mlp = t["arch"] == "mlp"
            config = RestartConfig(
                dataset=cell.dataset, dataset_options=options, model=cell.model, hparams=hparams,
                arch=Arch(t["arch"], tuple(t["encoder"]) if mlp else (), tuple(t["decoder"]) if mlp else (),
                          t["encoder_act"] if mlp else "none", t["decoder_act"] if mlp else "none"),
                latent_dim=t["latent_dim"], likelihood=t["likelihood"],
                optimizer=Optimizer(t["optimizer"], float(t["lr"])), epochs=epochs, batch_size=t["batch_size"],
                max_train=t.get("max_train"),
                regularizer_scale=D.regularizer_scale(cell.dataset) if obj.scaled_regularizer else 1.0)
            config_key = config.key
            if config_key in seen:  # same restart reached twice (e.g. an axis a model ignores)
                continue
            seen.add(config_key)
            run_keys = [config.run_key(s) for s in seeds]
            restarts.extend(Restart(rk, config_key, s, config) for rk, s in zip(run_keys, seeds, strict=True))
            S = t["seeds_per_trial"]
            for b in range(0, len(seeds), S):
                trials.append(TrialSpec(
                    trial_id=f"{config_key[:10]}-{b // S}", config_key=config_key, config=config,
                    seeds=tuple(seeds[b:b + S]), run_keys=tuple(run_keys[b:b + S]), checkpoints=checkpoints,
                    trace_every=t["trace_every"], precision=t["precision"], eval=eval_cfg,
                    cuda_graphs=bool(t["cuda_graphs"]), loggers=tuple(sorted(set(t.get("loggers") or ()))),
                ))
    return restarts, trials, eval_cfg
