"""Device-hours of a study, extrapolated from short measurements on the current machine.

`orthosweep submit STUDY --dry-run` groups the study's trials by step shape (`step_shape`: same dataset,
network, latent size, batch and seed-block size, and an objective whose step runs the same tensors), builds
the real batched model of one trial per shape, times a few real training steps after a warm-up, times one
real checkpoint evaluation per (dataset, network, metrics), and extrapolates:

    trial seconds = epochs × steps_per_epoch × (seconds per step of its block)
                    + checkpoints × seeds × (seconds per seed evaluation)

The result is what this machine would need with one trial at a time on the study's per-trial resources;
it says nothing about another device, which is why the machine is printed with it.

Figures are measured once per device: each one measured is recorded in `$ORTHOSWEEP_CACHE/step_figures.json`
(`sweep.step_figures`), and a figure found there for the same cost key (the bench's longer measurement of the
same step, or an earlier dry-run's) is reused instead of measuring. Each class says which figures it measured
and which it reused.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any

from sweep import step_figures
from sweep.spec import Study
from workers.data import load
from workers.models.objectives import OBJECTIVES
from workers.trial import TrialSpec


@dataclass
class ClassTiming:
    key: tuple[Any, ...]  # (dataset, step shape, arch kind, latent size, batch, seeds per trial)
    seconds_per_step: float  # the figure the extrapolation uses
    calibrated: float | None = None  # measured by this run (None: a recorded figure was reused)
    source: str = "measured now"  # or where the reused figure comes from ("bench <when>", "dry-run <when>")
    models: list[str] = dataclasses.field(default_factory=list)  # the objectives sharing this step shape
    eval_source: str = "measured now"
    trials: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0


@dataclass
class Estimate:
    classes: list[ClassTiming]
    calibration_seconds: float
    machine: str
    absent: int = 0  # trials whose dataset files are not on this machine: not timed, not counted

    @property
    def device_hours(self) -> float:
        return sum(c.train_seconds + c.eval_seconds for c in self.classes) / 3600.0

    def describe(self) -> str:
        measured = sum(c.calibrated is not None for c in self.classes)
        lines = [f"estimate on {self.machine} ({measured} of {len(self.classes)} step shapes measured now, "
                 f"{self.calibration_seconds:.0f} s; the rest reused recorded figures):"]
        for c in self.classes:
            ds, _, arch, d, batch, s = c.key
            src = "measured now" if c.calibrated is not None else f"from {c.source} (reused)"
            lines.append(f"  {ds}/{', '.join(c.models)} ({arch}, latent {d}, batch {batch}, {s} seeds per trial): "
                         f"{c.seconds_per_step * 1e3:.1f} ms/step {src}, {c.trials} trials, "
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


def _eval_class(t: TrialSpec) -> tuple[Any, ...]:
    c = t.config
    return (c.dataset, c.arch.kind, c.latent_dim, t.eval.metrics)


def time_steps(trial: TrialSpec, steps: int, *, cpus: float, gpus: float, warmup: int = 5,
               budget: float = float("inf")) -> tuple[float, Any]:
    """Median seconds per training step of `trial`'s real batched model on the trial's own resources (the
    median resists load spikes from other processes), and the TrialRun, for eval timing. Timing stops early
    once the timed steps took `budget` seconds (a slow step is measured well by one or two)."""
    import statistics

    import torch

    from workers.train import TrialRun, apply_device_plan, plan_device

    plan = plan_device(cpus=cpus, gpus=gpus, precision=trial.precision)
    apply_device_plan(plan)
    run = TrialRun(trial, study="estimate", study_uri=None, plan=plan)
    gen = torch.Generator().manual_seed(0)
    stochastic = run.vae.posterior != "none"
    d, B = run.vae.latent_dim, run.batch_size

    def one() -> None:
        pos = torch.randint(0, run.data.n, (run.S, B), generator=gen).to(run.device)
        eps = torch.randn(run.S, B, d, generator=gen).to(run.device) if stochastic else None
        perm = (torch.argsort(torch.rand(run.S, B, d, generator=gen), 1).to(run.device)  # as TrainStreams.shuffles
                if run.disc is not None else None)
        run.train_step(run.data.batch(pos), eps, perm)

    def sync() -> None:
        if run.device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        one()
    times = []
    for _ in range(steps):
        sync()
        t0 = time.perf_counter()
        one()
        sync()
        times.append(time.perf_counter() - t0)
        if sum(times) >= budget:
            break
    run.timed_steps = len(times)
    return statistics.median(times), run


def time_eval(run: Any) -> float:
    """Seconds of one seed's checkpoint evaluation (the study's metrics) on the trial's real model."""
    t0 = time.perf_counter()
    run._metrics(0)
    return time.perf_counter() - t0


DRY_RUN_COMMAND = "orthosweep submit --dry-run"


def estimate(study: Study, trials: list[TrialSpec] | None = None, *, steps: int = 5, warmup: int = 1,
             budget: float = 5.0,
             figures: dict[str, dict[str, Any]] | None = None, record_to: str | os.PathLike[str] | None = None,
             ) -> Estimate:
    """Extrapolate every trial of the study (or of `trials`) from one timing per step shape (`step_shape`)
    and one evaluation timing per (dataset, network, metrics). A figure recorded in `figures`
    (sweep.step_figures.load: by the bench or an earlier dry-run) for the same cost key is reused instead
    of measuring; what is measured is recorded to `record_to` (a step_figures file) when given."""
    from workers.device import plan_device

    trials = study.trials if trials is None else trials
    figures = dict(figures or {})
    res = study.spec.resources
    t_start = time.perf_counter()
    classes: dict[tuple[Any, ...], ClassTiming] = {}
    eval_cost: dict[tuple[Any, ...], tuple[float, str]] = {}
    absent = 0
    for t in trials:
        if any(str(v) in study.absent_files for v in t.config.dataset_options.values()):
            absent += 1
            continue
        key = _cost_class(t)
        probe = _without_planned(dataclasses.replace(t, trace_every=0), study.planned)
        plan = plan_device(cpus=res.cpu, gpus=res.gpu, precision=t.precision)
        run = None
        if key not in classes:
            fig = figures.get(step_figures.trial_cost_key(probe, plan, _train_size(t)))
            if fig is not None:
                classes[key] = ClassTiming(key, float(fig["s_per_step"]), None, _figure_source(fig))
            else:
                sec, run = time_steps(probe, steps, cpus=res.cpu, gpus=res.gpu, warmup=warmup, budget=budget)
                classes[key] = ClassTiming(key, sec, sec)
                _record(record_to, step_figures.cost_key(run), {"s_per_step": sec, "steps": run.timed_steps})
        ek = _eval_class(t)
        if ek not in eval_cost:
            ekey = step_figures.eval_key(probe, plan)
            fig = figures.get(ekey)
            if fig is not None and "s_per_eval" in fig:
                eval_cost[ek] = (float(fig["s_per_eval"]), f"from {_figure_source(fig)} (reused)")
            else:
                if run is None:
                    run = _built(probe, plan)
                eval_cost[ek] = (time_eval(run), "measured now")
                _record(record_to, ekey, {"s_per_eval": eval_cost[ek][0]})
        c = classes[key]
        if t.config.model not in c.models:
            c.models.append(t.config.model)
        n_train = _train_size(t)
        steps_per_epoch = max(1, n_train // t.config.batch_size)
        c.trials += 1
        c.train_seconds += t.config.epochs * steps_per_epoch * c.seconds_per_step
        c.eval_seconds += len(t.checkpoints) * len(t.seeds) * eval_cost[ek][0]
        c.eval_source = eval_cost[ek][1]
    return Estimate(list(classes.values()), time.perf_counter() - t_start, machine_description(), absent)


def _record(path: str | os.PathLike[str] | None, key: str, figure: dict[str, Any]) -> None:
    """Keep a measured figure for later dry-runs (a cache that cannot be written only costs a re-measure)."""

    if path is None:
        return
    try:
        step_figures.record_figure(key, figure, DRY_RUN_COMMAND, path)
    except (OSError, ValueError) as e:
        print(f"note: could not record the figure in {path} ({e})", file=sys.stderr)


def _figure_source(fig: dict[str, Any]) -> str:
    by = "dry-run" if fig.get("command") == DRY_RUN_COMMAND else "bench"
    return f"{by} {fig.get('measured_at', '?')}"


def _built(trial: TrialSpec, plan: Any) -> Any:
    from workers.device import apply_device_plan
    from workers.train import TrialRun

    apply_device_plan(plan)
    return TrialRun(trial, study="estimate", study_uri=None, plan=plan)


def _without_planned(t: TrialSpec, planned: tuple[str, ...]) -> TrialSpec:
    """The trial on its base data when its `perturbation:` folder is not written yet: the same model, batch and
    split, so the same step cost (computing the perturbation, once per point and node, is not counted)."""
    opts = t.config.dataset_options
    if opts.get("perturbation") is None or str(opts["perturbation"]) not in planned:
        return t
    base = {k: v for k, v in opts.items() if k != "perturbation"}
    return dataclasses.replace(t, config=dataclasses.replace(t.config, dataset_options=base))


@functools.cache
def _split_size(dataset: str, options_json: str) -> int:
    return len(load(dataset, **json.loads(options_json)).split_indices("train"))


def _train_size(t: TrialSpec) -> int:
    base = {k: v for k, v in t.config.dataset_options.items() if k != "perturbation"}  # the base data's split
    full = _split_size(t.config.dataset, json.dumps(base, sort_keys=True))
    cap = t.config.max_train
    return min(full, int(cap)) if cap else full
