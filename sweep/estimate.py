"""Device-hours of a study, extrapolated from short measurements on the current machine.

`orthosweep submit STUDY --dry-run` times the parts a trial's time is made of, each once, and extrapolates:

    trial seconds = epochs × steps_per_epoch × (model step + step data)
                    + checkpoints × seeds × (one seed's checkpoint evaluation)

- the model step (forward, gradients, update of every seed on a batch already on the device) once per step
  shape: the tensors decide it (observation shape, network, latent size, batch, seeds per trial, the
  objective's `step_shape`), so dSprites' colour, noise and scream variants, or five objectives of one shape,
  share one timing, and the line says which dataset it was timed on;
- the step's data (every seed's batch gathered onto the device, and a paired objective's partners) once per
  dataset, without a model;
- one seed's evaluation once per (dataset, network, posterior, evaluation settings), on a real model of that
  kind. An evaluation of more than EVAL_PROBE_POINTS points is timed on a subsample of that many (every
  evaluation size scaled by the same fraction) and scaled up linearly, which the line says: the metrics that
  a trial computes itself (the Jacobian metrics, the posterior's) cost the same per point, while fits that grow
  faster than their sample (DCI's boosted trees, with `eval.mode: inline`) are underestimated by it.
  `bench/dry_run.py` prints the scaled figure beside the full evaluation's.

The result is what this machine would need with one trial at a time on the study's per-trial resources;
it says nothing about another device, which is why the machine is printed with it.

Figures are measured once per device: each part measured is recorded in `$ORTHOSWEEP_CACHE/step_figures.json`
(`sweep.step_figures`), and a figure found there (the bench's measurement of a whole step, or an earlier
dry-run's part) is reused instead of measuring. Each line says which figures it measured and which it reused.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sweep import step_figures
from sweep.spec import Study
from workers.data import Dataset, load
from workers.models.objectives import OBJECTIVES
from workers.trial import TrialSpec

EVAL_PROBE_POINTS = 200  # a larger evaluation is timed on this many points and scaled up
MEASURED = "measured now"


@dataclass
class Part:
    """One timed part of a trial: seconds, where the figure comes from ("measured now", or "dry-run <when>" /
    "bench <when>" for a recorded one) and how it was made ("on color_dsprites", "scaled from 200 points")."""

    seconds: float
    source: str = MEASURED
    how: str = ""

    @property
    def measured(self) -> bool:
        return self.source == MEASURED

    def describe(self) -> str:
        src = MEASURED if self.measured else f"from {self.source} (reused)"
        return f"{src}, {self.how}" if self.how else src


@dataclass
class ClassTiming:
    """One line of the estimate: the trials of one dataset whose objectives share a step shape."""

    key: tuple[Any, ...]  # (dataset, step shape, arch kind, latent size, batch, seeds per trial)
    seconds_per_step: float  # the figure the extrapolation uses (model step + step data, or a bench figure)
    calibrated: float | None = None  # the whole step measured by this run (None: reused, wholly or in part)
    source: str = MEASURED  # "measured now", "partly measured now", or where a reused figure comes from
    models: list[str] = dataclasses.field(default_factory=list)  # the objectives sharing this step shape
    eval_source: str = MEASURED
    trials: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    step_parts: str = ""  # how the step figure is made up, in words


@dataclass
class Estimate:
    classes: list[ClassTiming]
    calibration_seconds: float
    machine: str
    absent: int = 0  # trials whose dataset files are not on this machine: not timed, not counted
    step_shapes: int = 0  # distinct model steps the study's trials need
    step_shapes_measured: int = 0  # of which this run timed

    @property
    def device_hours(self) -> float:
        return sum(c.train_seconds + c.eval_seconds for c in self.classes) / 3600.0

    def describe(self) -> str:
        lines = [f"estimate on {self.machine} ({self.step_shapes_measured} of {self.step_shapes} step shapes "
                 f"measured now, {self.calibration_seconds:.0f} s; the rest reused recorded figures):"]
        for c in self.classes:
            ds, _, arch, d, batch, s = c.key
            src = c.source if c.source in (MEASURED, "partly measured now") else f"from {c.source} (reused)"
            parts = f" ({c.step_parts})" if c.step_parts else ""
            lines.append(f"  {ds}/{', '.join(c.models)} ({arch}, latent {d}, batch {batch}, {s} seeds per trial): "
                         f"{c.seconds_per_step * 1e3:.1f} ms/step {src}{parts}, {c.trials} trials, "
                         f"train {_duration(c.train_seconds)} + eval {_duration(c.eval_seconds)} "
                         f"(evaluation {c.eval_source})")
        lines.append(f"  total: {self.device_hours:.2f} device-hours (one trial at a time on this machine)")
        if self.absent:
            lines.append(f"  not estimated: {self.absent} trials whose dataset files are not on this machine")
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} cores, {cpu}, {gpu}"


def step_shape(model: str) -> str:
    """The step shape of `model` (`Objective.step_shape`): objectives of one shape are timed once."""
    return OBJECTIVES[model].step_shape


def _cost_class(t: TrialSpec) -> tuple[Any, ...]:
    c = t.config
    return (c.dataset, step_shape(c.model), c.arch.kind, c.latent_dim, c.batch_size, len(t.seeds))


def _median_seconds(one: Callable[[], Any], sync: Callable[[], None], steps: int, warmup: int,
                    budget: float) -> tuple[float, int]:
    """(median seconds of `one()` over up to `steps` timed calls after `warmup` untimed ones, calls timed): the
    median resists load spikes from other processes; timing stops once the timed calls took `budget` seconds
    and at least two were timed (a slow call is measured well by a few)."""
    for _ in range(warmup):
        one()
    times: list[float] = []
    for _ in range(max(1, steps)):
        sync()
        t0 = time.perf_counter()
        one()
        sync()
        times.append(time.perf_counter() - t0)
        if len(times) >= 2 and sum(times) >= budget:
            break
    return statistics.median(times), len(times)


def _sync(device: Any) -> Callable[[], None]:
    import torch

    return torch.cuda.synchronize if device.type == "cuda" else lambda: None


def time_model_step(run: Any, steps: int, *, warmup: int = 1, budget: float = float("inf")) -> tuple[float, int]:
    """(median seconds, steps timed) of `run`'s (a built `workers.train.TrialRun`) model step on one batch
    already on the device: the real step (paired partners, FactorVAE's permutations and a captured step graph
    included). Its inputs are drawn once, outside the timing: gathering them is the step data's part
    (`time_step_data`)."""
    import torch

    S, B, d = run.S, run.batch_size, run.vae.latent_dim
    gen = torch.Generator().manual_seed(0)
    pos = torch.randint(0, run.data.n, (S, B), generator=gen)
    x = run.data.batch(pos.to(run.device))
    x_pair = pair_perm = None
    if run.pairs is not None:
        gens = [torch.Generator().manual_seed(s) for s in range(S)]
        x_pair, pair_perm = run.pairs.chunk(pos[:, None, :], gens).step(0)
    width = 2 * B if x_pair is not None else B  # paired steps draw noise for both observations
    eps = torch.randn(S, width, d, generator=gen).to(run.device) if run.vae.posterior != "none" else None
    perm = torch.argsort(torch.rand(S, B, d, generator=gen), 1).to(run.device) if run.disc is not None else None
    sec, n = _median_seconds(lambda: run.train_step(x, eps, perm, x_pair=x_pair, pair_perm=pair_perm),
                             _sync(run.device), steps, warmup, budget)
    run.timed_steps = n
    return sec, n


def time_step_data(trial: TrialSpec, plan: Any, dataset: Dataset, steps: int, *, warmup: int = 1) -> tuple[float, int]:
    """(median seconds, draws timed) of one step's data of `trial` on `plan`'s device: every seed's batch
    gathered from the training split as the trial holds it (`workers.train.train_data`) and, for a paired
    objective, its partners (`workers.train.pair_feed`)."""
    import torch

    from workers.train import pair_feed, train_data

    cfg = trial.config
    data = train_data(dataset, cfg, plan)
    feed = pair_feed(dataset, cfg, data, plan) if OBJECTIVES[cfg.model].paired else None
    S, B = len(trial.seeds), min(cfg.batch_size, data.n)
    gen = torch.Generator().manual_seed(1)
    gens = [torch.Generator().manual_seed(s) for s in range(S)]

    def one() -> None:
        pos = torch.randint(0, data.n, (S, B), generator=gen)
        data.batch(pos.to(plan.device))
        if feed is not None:
            feed.chunk(pos[:, None, :], gens).step(0)

    return _median_seconds(one, _sync(plan.device), steps, warmup, float("inf"))


def eval_probe(settings: Any, points: int = EVAL_PROBE_POINTS) -> tuple[Any, float]:
    """(the evaluation settings scaled to at most `points` points, the fraction f they were scaled by): every
    size (`n_eval`, `n_train_supervised`, `n_test_supervised`) times the same f, at least 10 (f = 1: as given)."""
    sizes = {k: getattr(settings, k) for k in ("n_eval", "n_train_supervised", "n_test_supervised")}
    f = min(1.0, points / max(sizes.values()))
    if f >= 1.0:
        return settings, 1.0
    return dataclasses.replace(settings, **{k: max(10, round(v * f)) for k, v in sizes.items()}), f


def time_eval(model: Any, device: Any, trial: TrialSpec, dataset: Dataset, *,
              points: int = EVAL_PROBE_POINTS) -> tuple[float, str]:
    """(seconds of one seed's checkpoint evaluation of `trial`, how it was made) of `model` (one seed's view of a
    real model of the trial's step shape, `workers.models.protocol.SeedModel`, on `device`) on `dataset`: the
    metrics the trial computes itself, after a warm-up on ten points; an evaluation larger than `points` is
    timed on a subsample (`eval_probe`) and scaled up by 1/f."""
    from workers.metrics.evaluate import evaluate_metrics
    from workers.metrics.inputs import metric_seed

    metrics = trial.eval.in_trial()

    def once(settings: Any) -> float:
        t0 = time.perf_counter()
        evaluate_metrics(model, dataset, metrics=metrics, eval_cfg=settings.as_dict(),
                         seed=metric_seed(trial.run_keys[0]), device=device)
        return time.perf_counter() - t0

    once(eval_probe(trial.eval, 10)[0])  # first calls (imports, kernels, caches) are not an evaluation's cost
    settings, f = eval_probe(trial.eval, points)
    sec = once(settings)
    if f >= 1.0:
        return sec, ""
    return sec / f, f"scaled from {settings.n_eval:,} of {trial.eval.n_eval:,} points"


DRY_RUN_COMMAND = "orthosweep submit --dry-run"


@dataclass
class TrialCost:
    """The figures one trial is extrapolated from."""

    step: float  # seconds per training step
    source: str  # MEASURED, "partly measured now" or where a reused whole-step figure comes from
    parts: str  # how the step figure is made up, in words ("" for a bench figure of the whole step)
    evaluation: Part  # one seed's checkpoint evaluation
    n_train: int


class Calibration:
    """The timed parts of a study's trials (see the module), each measured once or reused from `figures`
    (sweep.step_figures.load); what is measured is recorded to `record_to` (a step_figures file) when given.
    `steps`, `warmup`, `budget`: the model step's timing (`time_model_step`). `measure` may run in a thread of
    its own while the caller reads the store: it touches nothing else."""

    def __init__(self, study: Study, *, figures: dict[str, dict[str, Any]] | None = None,
                 record_to: str | os.PathLike[str] | None = None, steps: int = 5, warmup: int = 1,
                 budget: float = 2.0) -> None:
        self.study, self.figures, self.record_to = study, dict(figures or {}), record_to
        self.steps, self.warmup, self.budget = steps, warmup, budget
        self.seconds = 0.0
        # model step key -> (one seed's view of the model built for it, its device), kept for the evaluations
        # of later datasets of that shape; the TrialRun itself (optimiser state, a FactorVAE discriminator:
        # ~1 GB at 10 conv seeds) is let go once its trial is timed
        self.models: dict[str, tuple[Any, Any]] = {}
        self.model: dict[str, Part] = {}
        self.data: dict[str, Part] = {}
        self.evaluation: dict[str, Part] = {}
        self.shapes: set[str] = set()
        self.costs: dict[str, TrialCost] = {}  # trial id -> its figures
        self.cancelled = False  # set by another thread: `measure` stops after the part it is timing

    def absent(self, t: TrialSpec) -> bool:
        """The trial's dataset files are not on this machine (not timed, not counted)."""
        return any(str(v) in self.study.absent_files for v in t.config.dataset_options.values())

    def measure(self, trials: list[TrialSpec]) -> None:
        """Time (or find recorded) every part the trials need that is not known yet."""
        t0 = time.perf_counter()
        try:
            for t in trials:
                if self.cancelled:
                    return
                if not self.absent(t) and t.trial_id not in self.costs:
                    self.costs[t.trial_id] = self._cost(t)
        finally:
            self.seconds += time.perf_counter() - t0

    def _recorded(self, key: str, field: str) -> Part | None:
        fig = self.figures.get(key)
        if fig is None or field not in fig:
            return None
        return Part(float(fig[field]), _figure_source(fig), str(fig.get("how", "")))

    def _cost(self, t: TrialSpec) -> TrialCost:
        from workers.device import plan_device

        res = self.study.spec.resources
        probe = _without_planned(dataclasses.replace(t, trace_every=0), self.study.planned)
        plan = plan_device(cpus=res.cpu, gpus=res.gpu, precision=t.precision)
        dataset = _dataset(t)
        n_train = _train_size(t)
        mkey = step_figures.model_step_key(probe, plan, tuple(dataset.observation_shape), n_train)
        self.shapes.add(mkey)

        built: list[Any] = []

        def run() -> Any:
            if not built:  # its held-out points (the checkpoint losses') as few as the eval timing's
                built.append(_built(dataclasses.replace(probe, eval=eval_probe(probe.eval)[0]), plan, dataset))
                self.models[mkey] = (built[0].vae.seed_view(built[0].params.data, 0), built[0].device)
            return built[0]

        whole = self._recorded(step_figures.trial_cost_key(probe, plan, n_train), "s_per_step")
        if whole is not None:  # the bench's figure of this very step
            step, source, parts = whole.seconds, whole.source, ""
        else:
            m = self.model.get(mkey) or self._recorded(mkey, "s_per_step")
            if m is None:
                sec, n = time_model_step(run(), self.steps, warmup=self.warmup, budget=self.budget)
                m = Part(sec, MEASURED, f"on {t.config.dataset}")
                self._record(mkey, {"s_per_step": sec, "steps": n, "how": m.how})
            self.model[mkey] = m
            dkey = step_figures.feed_key(probe, plan, n_train)
            d = self.data.get(dkey) or self._recorded(dkey, "s_per_step")
            if d is None:
                sec, n = time_step_data(probe, plan, dataset, self.steps, warmup=self.warmup)
                d = Part(sec)
                self._record(dkey, {"s_per_step": sec, "steps": n})
            self.data[dkey] = d
            step = m.seconds + d.seconds
            mixed = m.source != d.source  # each part then says where it comes from
            source = "partly measured now" if mixed and (m.measured or d.measured) else m.source
            parts = (f"model step {m.seconds * 1e3:.1f} ms {m.describe() if mixed else m.how}".rstrip()
                     + f" + data {d.seconds * 1e3:.1f} ms{' ' + d.describe() if mixed else ''}")
        ekey = step_figures.eval_key(probe, plan)
        ev = self.evaluation.get(ekey) or self._recorded(ekey, "s_per_eval")
        if ev is None:
            if mkey not in self.models:
                run()
            sec, how = time_eval(*self.models[mkey], probe, dataset)
            ev = Part(sec, MEASURED, how)
            self._record(ekey, {"s_per_eval": sec, "how": how})
        self.evaluation[ekey] = ev
        return TrialCost(step, source, parts, ev, n_train)

    def _record(self, key: str, figure: dict[str, Any]) -> None:
        """Keep a measured figure for later dry-runs (a cache that cannot be written only costs a re-measure)."""
        if self.record_to is None:
            return
        try:
            step_figures.record_figure(key, figure, DRY_RUN_COMMAND, self.record_to)
        except (OSError, ValueError) as e:
            print(f"note: could not record the figure in {self.record_to} ({e})", file=sys.stderr)

    def estimate(self, trials: list[TrialSpec]) -> Estimate:
        """The study's `trials` extrapolated from the parts (measuring those not known yet)."""
        self.measure(trials)
        lines: dict[tuple[Any, ...], ClassTiming] = {}
        absent = 0
        for t in trials:
            if self.absent(t):
                absent += 1
                continue
            cost = self.costs[t.trial_id]
            key = _cost_class(t)
            c = lines.get(key)
            if c is None:
                c = lines[key] = ClassTiming(key, cost.step, cost.step if cost.source == MEASURED else None,
                                             cost.source, step_parts=cost.parts,
                                             eval_source=cost.evaluation.describe())
            if t.config.model not in c.models:
                c.models.append(t.config.model)
            c.trials += 1
            c.train_seconds += t.config.epochs * max(1, cost.n_train // t.config.batch_size) * cost.step
            c.eval_seconds += len(t.checkpoints) * len(t.seeds) * cost.evaluation.seconds
        measured = sum(p.measured for p in self.model.values())
        return Estimate(list(lines.values()), self.seconds, machine_description(), absent,
                        step_shapes=len(self.shapes), step_shapes_measured=measured)


def estimate(study: Study, trials: list[TrialSpec] | None = None, *, steps: int = 5, warmup: int = 1,
             budget: float = 2.0, figures: dict[str, dict[str, Any]] | None = None,
             record_to: str | os.PathLike[str] | None = None) -> Estimate:
    """Extrapolate every trial of the study (or of `trials`) from one timing per part (`Calibration`)."""
    cal = Calibration(study, figures=figures, record_to=record_to, steps=steps, warmup=warmup, budget=budget)
    return cal.estimate(study.trials if trials is None else trials)


def _figure_source(fig: dict[str, Any]) -> str:
    by = "dry-run" if fig.get("command") == DRY_RUN_COMMAND else "bench"
    return f"{by} {fig.get('measured_at', '?')}"


def _built(trial: TrialSpec, plan: Any, dataset: Dataset | None = None) -> Any:
    from workers.device import apply_device_plan
    from workers.train import TrialRun

    apply_device_plan(plan)
    return TrialRun(trial, study="estimate", study_uri=None, plan=plan, dataset=dataset)


def _without_planned(t: TrialSpec, planned: tuple[str, ...]) -> TrialSpec:
    """The trial on its base data when its `perturbation:` folder is not written yet: the same model, batch and
    split, so the same step cost (computing the perturbation, once per point and node, is not counted)."""
    opts = t.config.dataset_options
    if opts.get("perturbation") is None or str(opts["perturbation"]) not in planned:
        return t
    base = {k: v for k, v in opts.items() if k != "perturbation"}
    return dataclasses.replace(t, config=dataclasses.replace(t.config, dataset_options=base))


@functools.cache
def _loaded(dataset: str, options_json: str) -> Dataset:
    return load(dataset, **json.loads(options_json))


def _dataset(t: TrialSpec) -> Dataset:
    """The trial's base data (without a `perturbation:` folder, which costs the same per step)."""
    base = {k: v for k, v in t.config.dataset_options.items() if k != "perturbation"}
    return _loaded(t.config.dataset, json.dumps(base, sort_keys=True))


def _train_size(t: TrialSpec) -> int:
    full = len(_dataset(t).split_indices("train"))
    cap = t.config.max_train
    return min(full, int(cap)) if cap else full
