"""Device-hours of a study, extrapolated from a short measured calibration on the current machine.

`orthosweep submit STUDY --dry-run --estimate` builds, for every distinct cost class of the study's trials
(same dataset, architecture, objective, latent size, batch and seed-block size), the real batched model of
one trial, times a few real training steps after a warm-up, times one real checkpoint evaluation per
(dataset, architecture, latent size, metrics), and extrapolates:

    trial seconds = epochs × steps_per_epoch × (seconds per step of its block)
                    + checkpoints × seeds × (seconds per seed evaluation)

The result is what this machine would need with one trial at a time on the study's per-trial resources;
it says nothing about another device, which is why the machine is printed with it.

Where `bench/gpu_throughput.py` has measured the same cost on the same device (`sweep.step_figures`: same
GPU model, dataset, training-set size, architecture, batch, optimiser, seeds per trial, precision), its
seconds per step replace the class's calibration: a longer measurement of the same step. Each class says
which figure it used.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import time
from dataclasses import dataclass
from typing import Any

from sweep.spec import Study
from workers.trial import TrialSpec


@dataclass
class ClassTiming:
    key: tuple[Any, ...]
    seconds_per_step: float  # the figure the extrapolation uses
    calibrated: float | None = None  # this run's calibration, when a bench figure replaced it
    source: str = "calibration"  # or "bench <measured_at>"
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
        lines = [f"estimate from a {self.calibration_seconds:.0f} s calibration on {self.machine}:"]
        for c in self.classes:
            ds, model, arch, d, batch, s = c.key
            src = "" if c.calibrated is None else \
                f" from {c.source} (calibration now: {c.calibrated * 1e3:.1f} ms/step)"
            lines.append(f"  {ds}/{model} ({arch}, latent {d}, batch {batch}, {s} seeds per trial): "
                         f"{c.seconds_per_step * 1e3:.1f} ms/step{src}, {c.trials} trials, "
                         f"train {_duration(c.train_seconds)} + eval {_duration(c.eval_seconds)}")
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


def _cost_class(t: TrialSpec) -> tuple[Any, ...]:
    c = t.config
    return (c.dataset, c.model, c.arch.kind, c.latent_dim, c.batch_size, len(t.seeds))


def _eval_class(t: TrialSpec) -> tuple[Any, ...]:
    c = t.config
    return (c.dataset, c.arch.kind, c.latent_dim, t.eval.metrics)


def time_steps(trial: TrialSpec, steps: int, *, cpus: float, gpus: float, warmup: int = 5) -> tuple[float, Any]:
    """Median seconds per training step of `trial`'s real batched model on the trial's own resources (the
    median resists load spikes from other processes), and the TrialRun, for eval timing."""
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
    return statistics.median(times), run


def time_eval(run: Any) -> float:
    """Seconds of one seed's checkpoint evaluation (the study's metrics) on the trial's real model."""
    t0 = time.perf_counter()
    run._metrics(0)
    return time.perf_counter() - t0


def estimate(study: Study, trials: list[TrialSpec] | None = None, *, steps: int = 20,
             figures: dict[str, dict[str, Any]] | None = None) -> Estimate:
    """Measure each cost class once and extrapolate to every trial of the study (or of `trials`); a class
    whose cost key has a bench figure in `figures` (sweep.step_figures.load) uses that figure's s/step."""
    from sweep.step_figures import cost_key

    trials = study.trials if trials is None else trials
    figures = figures or {}
    t_start = time.perf_counter()
    classes: dict[tuple[Any, ...], ClassTiming] = {}
    eval_cost: dict[tuple[Any, ...], float] = {}
    absent = 0
    for t in trials:
        if any(str(v) in study.absent_files for v in t.config.dataset_options.values()):
            absent += 1
            continue
        key = _cost_class(t)
        if key not in classes:
            probe = _without_planned(dataclasses.replace(t, trace_every=0), study.planned)
            res = study.spec.resources
            sec, run = time_steps(probe, steps, cpus=res.cpu, gpus=res.gpu)
            fig = figures.get(cost_key(run))
            classes[key] = ClassTiming(key, sec) if fig is None else \
                ClassTiming(key, float(fig["s_per_step"]), sec, f"bench {fig['measured_at']}")
            ek = _eval_class(t)
            if ek not in eval_cost:
                eval_cost[ek] = time_eval(run)
        c = classes[key]
        n_train = _train_size(t)
        steps_per_epoch = max(1, n_train // t.config.batch_size)
        c.trials += 1
        c.train_seconds += t.config.epochs * steps_per_epoch * c.seconds_per_step
        c.eval_seconds += len(t.checkpoints) * len(t.seeds) * eval_cost[_eval_class(t)]
    return Estimate(list(classes.values()), time.perf_counter() - t_start, machine_description(), absent)


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
    from workers.data import load

    return len(load(dataset, **json.loads(options_json)).split_indices("train"))


def _train_size(t: TrialSpec) -> int:
    base = {k: v for k, v in t.config.dataset_options.items() if k != "perturbation"}  # the base data's split
    full = _split_size(t.config.dataset, json.dumps(base, sort_keys=True))
    cap = t.config.max_train
    return min(full, int(cap)) if cap else full
