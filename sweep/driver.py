"""The sweep driver: a validated Study -> Ray Tune trials (one per seed block) -> rows in the Parquet store.

Flow of `run_sweep` (design.md §9):
  1. preflight: address reachable, storage writable (fails in seconds, nothing scheduled);
  2. Ray: in-process local Ray by default (dashboard off, loopback address, token auth unless the caller set
     RAY_AUTH_MODE), or an existing cluster (`auto`, `ray://`, `HEAD:6379`); resources satisfiable;
  3. `study.yaml` written; on `resume`, the latest Tune experiment under `<study_dir>/tune/` is restored
     (running trials continue from their last Tune checkpoint, errored ones are retried);
  4. the store decides what is left: restarts whose final checkpoint is stored are dropped from their seed
     block (seeds are block-independent), empty blocks from the sweep; the rest run as a new experiment;
  5. the evaluation stage (`sweep.evaluate`) computes every evaluation the store still lacks: the CPU
     metrics of `eval.mode: async` (most already handed to Ray tasks while the trials trained), UDR, and
     whatever a killed driver left undone. The sweep is complete when those rows are written.
Tune's own loggers and tables are off; `SweepProgress` prints one line and records permanent failures.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from sweep.evaluate import async_metrics, make_async_callback, run_evaluation
from sweep.failures import record_failed_trial
from sweep.loggers import check_loggers, study_loggers, tune_callbacks
from sweep.preflight import (
    address_kind,
    check_address,
    check_resources,
    check_storage,
    wait_for_resources,
)
from sweep.ray_session import ray_session
from sweep.spec import Study
from sweep.storage_errors import DetailsLog, StorageFault, fault_of, raises_storage_faults, storage_faults_to
from sweep.tune_restore import restore_tuner, state_problem
from workers.models.objectives import steps_eagerly
from workers.store import layout
from workers.store.layout import filesystem, join_uri
from workers.store.pending import pending_evaluations
from workers.store.plan import PlannedRestart, write_plan
from workers.store.restarts import completed_run_keys, final_states
from workers.trial import TrialSpec

DEFAULT_TRAINABLE = "workers.train:tune_trainable"
RESOURCE_WAIT_S = 300.0  # on a cluster: how long to wait for the autoscaler to add a node a trial fits on
EXPERIMENT_PREFIX = "run-"

TrainableRef = str | Callable[[dict[str, Any]], Any]


# --------------------------------------------------------------------------------------------------
# Planning (pure, given the store's completed run keys)
# --------------------------------------------------------------------------------------------------

@dataclass
class Plan:
    """What a sweep still has to train: seed blocks shrunk to their unfinished restarts."""

    trials: list[TrialSpec]
    done_keys: set[str]
    total: int

    @property
    def pending_restarts(self) -> int:
        return sum(len(t.seeds) for t in self.trials)


def shrink_trials(trials: list[TrialSpec], done: set[str]) -> list[TrialSpec]:
    """Drop finished restarts from each seed block and blocks left empty (`TrialSpec.without`)."""
    return [s for s in (t.without(done) for t in trials) if s is not None]


def plan_sweep(study: Study, done: set[str] | None = None) -> Plan:
    """The sweep's plan given the store (read now unless `done` is given)."""
    all_keys = [r.run_key for r in study.restarts]
    if done is None:
        expected = {rk: len(t.checkpoints) for t in study.trials for rk in t.run_keys}
        done = completed_run_keys(study.study_uri, all_keys, checkpoints=expected) \
            if _store_exists(study.study_uri) else set()
    done = done & set(all_keys)
    return Plan(shrink_trials(study.trials, done), done, len(all_keys))


def _store_exists(study_uri: str) -> bool:
    import pyarrow.fs as pafs

    fs, path = filesystem(study_uri)
    return fs.get_file_info(path).type == pafs.FileType.Directory or "://" in study_uri


def describe_plan(study: Study, plan: Plan, max_concurrent: int | None) -> str:
    """Human-readable plan: restarts and trials per (dataset, model) and the resource request."""
    r = study.spec.resources
    lines = [f"study {study.name} -> {study.study_uri}",
             f"restarts: {plan.total} total, {len(plan.done_keys)} already in the store, "
             f"{plan.pending_restarts} to train in {len(plan.trials)} trials"]
    cells: dict[tuple[str, str], list[int]] = {}
    for t in plan.trials:
        c = cells.setdefault(t.partition, [0, 0, 0])
        c[0] += 1
        c[1] += len(t.seeds)
        c[2] = max(c[2], len(t.seeds))
    for (d, m), (n_trials, n_restarts, block) in sorted(cells.items()):
        lines.append(f"  {d}/{m}: {n_restarts} restarts in {n_trials} trials (seed blocks of up to {block})")
    conc = max_concurrent or r.max_concurrent_trials
    lines.append(f"resources per trial: cpu={r.cpu:g}, gpu={r.gpu:g}; max concurrent trials: "
                 f"{conc if conc else 'as many as fit'}; retries per trial: {r.max_failures}")
    lines += gpu_setting_notes(plan.trials, r.gpu)
    return "\n".join(lines)


def gpu_setting_notes(trials: list[TrialSpec], gpu: float) -> list[str]:
    """Notes on the CUDA-only training settings the trials ask for but will not get: `precision` tf32/bf16
    and `cuda_graphs` on CPU-only trials, and `cuda_graphs` on models that step eagerly anyway
    (`workers.models.catalog.steps_eagerly`)."""

    notes = []
    precisions = sorted({t.precision for t in trials if t.precision != "fp32"})
    graphed = [t for t in trials if t.cuda_graphs]
    if gpu <= 0 and precisions:
        notes.append(f"note: train.precision {', '.join(precisions)} acts on CUDA only; with resources.gpu=0 "
                     "these trials compute in fp32 on CPUs")
    if gpu <= 0 and graphed:
        notes.append("note: train.cuda_graphs acts on CUDA only; with resources.gpu=0 these trials step eagerly "
                     "on CPUs")
    eager = {t.config.model: steps_eagerly(t.config.model) for t in graphed if steps_eagerly(t.config.model)}
    if gpu > 0 and eager:
        notes.append("note: train.cuda_graphs: these trials step eagerly: "
                     + "; ".join(f"{m} ({why})" for m, why in sorted(eager.items())))
    return notes


# --------------------------------------------------------------------------------------------------
# Ray
# --------------------------------------------------------------------------------------------------

def load_trainable(ref: TrainableRef) -> Callable[[dict[str, Any]], Any]:
    """A Tune function trainable from `module:function` (or the callable itself)."""
    if callable(ref):
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _wrap_trainable(fn: Callable[[dict[str, Any]], Any], gpu: float,
                    check_store: bool = False) -> Callable[..., Any]:
    """The trainable as scheduled. Tune's config is the contract's config {"trial": dict, "study",
    "study_uri"} (`sweep.planned_search`). A fractional-GPU trial caps its CUDA memory at its share. With
    `check_store` (restored experiments, planned before the driver died) each trial start first asks the store
    which of its restarts are complete and does not train them again."""

    def orthosweep_trial(config: dict[str, Any]) -> Any:
        if 0 < gpu < 1:
            import torch

            if torch.cuda.is_available():
                torch.cuda.set_per_process_memory_fraction(gpu)
        resolved: dict[str, Any] | None = config
        if check_store:
            resolved = _skip_completed(config)
            if resolved is None:
                return None
        return fn(resolved)

    return orthosweep_trial


def _skip_completed(config: dict[str, Any]) -> dict[str, Any] | None:
    """None if every restart of the trial is complete in the store; else the config, its seed block shrunk
    to the unfinished restarts when the trial starts from scratch (a Tune checkpoint holds the whole block,
    so a restored trial keeps it)."""
    from ray import tune

    t = TrialSpec.from_dict(config["trial"])
    done = completed_run_keys(config["study_uri"], t.run_keys, t.partition,
                              checkpoints=dict.fromkeys(t.run_keys, len(t.checkpoints)))
    left = t.without(done)
    if left is None:
        return None
    if left is t or tune.get_checkpoint() is not None:
        return config
    return {**config, "trial": left.to_dict()}


def _trial_dirname(trial: Any) -> str:
    return str(trial.config["trial"]["trial_id"])  # <config_key[:10]>-<block>


def _id_grid_plan_uri(study_uri: str, experiment: str) -> str:
    """The plan kept beside an experiment whose Tune configs name trials by id (a grid over ids, each trial
    resolving its id in the whole plan): such an experiment is not restored, the store decides instead."""
    return join_uri(study_uri, "tune", f"{experiment}.plan.json")


# --------------------------------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------------------------------

@dataclass
class SweepOutcome:
    total: int
    done: int
    failed: int
    trained: int  # restarts whose trials this call started (0 if everything was already in the store)
    seconds: float
    evaluated: int = 0  # evaluations rows the evaluation stage wrote after training
    eval_errors: tuple[str, ...] = ()  # evaluation tasks that raised (nothing written for them)


def _evaluations_pending(study: Study) -> bool:
    return _store_exists(study.study_uri) and not pending_evaluations(study.study_uri, study.eval.metrics).empty


def write_study_files(study: Study) -> None:
    """The study folder's description of itself: study.yaml (the normalised spec) and restarts.json (its
    expanded restarts, which `status` reads instead of re-validating the spec)."""
    text = layout.write_study_yaml(study.study_uri, study.normalized)
    write_plan(study.study_uri, text, study.name,
               [PlannedRestart(r.run_key, r.config_key, r.config.dataset, r.config.model, r.seed)
                for r in study.restarts])


@raises_storage_faults
def run_sweep(study: Study, *, address: str | None = None, max_concurrent: int | None = None,
              resume: bool = False, trainable: TrainableRef = DEFAULT_TRAINABLE, out: TextIO | None = None,
              progress_every: float = 5.0, resource_wait: float = RESOURCE_WAIT_S) -> SweepOutcome:
    """Train every restart of `study` not already complete in its store; returns the counts at the end.

    Raises PreflightError (exit 2, nothing scheduled) for an unreachable address, unwritable storage or
    resources no node offers (at once on a local Ray; on a cluster after `resource_wait` seconds, time for
    its autoscaler to add such a node); StorageFault when a write to the study folder fails for lack of
    space, permission or bucket (the sweep stops at the first such failure; sweep.storage_errors).
    """
    out = out or sys.stdout
    started = time.time()
    if "://" not in study.study_uri and not os.path.isabs(study.study_uri):  # trials may run in another cwd
        study = dataclasses.replace(study, folder=os.path.abspath(os.path.expanduser(study.study_uri)))
    check_address(address)
    check_storage(study.study_uri)
    check_loggers(study_loggers(study.trials), study.study_uri)
    fn = load_trainable(trainable)
    if not resume and not plan_sweep(study).trials and not _evaluations_pending(study):  # no Ray needed
        write_study_files(study)
        print(describe_plan(study, plan_sweep(study), max_concurrent), file=out, flush=True)
        return SweepOutcome(len(study.restarts), len(study.restarts), 0, 0, time.time() - started)
    with ray_session(address):
        import ray

        r = study.spec.resources
        wait = 0.0 if address_kind(address) == "local" else resource_wait
        if wait and check_resources(r.cpu, r.gpu, ray.nodes()):
            from ray.autoscaler.sdk import request_resources

            request_resources(bundles=[{"CPU": r.cpu, **({"GPU": r.gpu} if r.gpu else {})}])
        wait_for_resources(r.cpu, r.gpu, ray.nodes, wait, say=lambda m: print(m, file=out, flush=True))
        write_study_files(study)
        failed: set[str] = set()
        trained = 0
        if resume:
            latest = latest_experiment(study.study_uri)
            if latest is not None:
                print(f"[orthosweep] resuming Tune experiment {latest}", file=out, flush=True)
                progress = _fit_restored(study, fn, latest, max_concurrent, out, progress_every)
                if progress is not None:
                    failed |= progress.failed_keys - progress.done_keys
                    trained += progress.trained
        plan = plan_sweep(study)
        plan = Plan([t for t in plan.trials if not set(t.run_keys) <= failed], plan.done_keys, plan.total)
        print(describe_plan(study, plan, max_concurrent), file=out, flush=True)
        if plan.trials:
            name = EXPERIMENT_PREFIX + time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            progress = _fit(study, fn, plan, name, max_concurrent, out, progress_every, restore=False)
            trained += progress.trained
        evaluation = run_evaluation(study, out=out, progress_every=progress_every, after_training=True)
        states = final_states(study.study_uri, [r.run_key for r in study.restarts])
    done = sum(1 for s in states.values() if s.done)
    n_failed = sum(1 for s in states.values() if s.status == "failed")
    return SweepOutcome(len(study.restarts), done, n_failed, trained, time.time() - started, evaluation.rows,
                        tuple(evaluation.errors))


def latest_experiment(study_uri: str) -> str | None:
    """Name of the newest `run-*` Tune experiment under `<study_dir>/tune/`, if any."""
    import pyarrow.fs as pafs

    fs, tune_dir = filesystem(join_uri(study_uri, "tune"))
    infos = fs.get_file_info(pafs.FileSelector(tune_dir, allow_not_found=True))
    names = sorted(i.base_name for i in infos
                   if i.type == pafs.FileType.Directory and i.base_name.startswith(EXPERIMENT_PREFIX))
    return names[-1] if names else None


def _fit_restored(study: Study, fn: Callable[[dict[str, Any]], Any], name: str, max_concurrent: int | None,
                  out: TextIO, progress_every: float) -> Any:
    """Restore and continue experiment `name`; None when its Tune state is missing, torn or inconsistent
    (Tune's state is a cache: the caller then plans a fresh run over what the store says is left)."""
    try:
        return _fit(study, fn, None, name, max_concurrent, out, progress_every, restore=True)
    except StorageFault:
        raise
    except Exception as e:  # noqa: BLE001 - any damage to Tune's files (a Ray upgrade included) lands here
        if fault_of(e, study.study_uri) is not None:
            raise
        why = str(e).strip().splitlines()
        print(f"[orthosweep] Tune experiment {name} could not be restored ({type(e).__name__}"
              f"{': ' + why[-1][:200] if why else ''}); a fresh Tune run takes over what the store says is left",
              file=out, flush=True)
        return None


def _fit(study: Study, fn: Callable[[dict[str, Any]], Any], plan: Plan | None, name: str,
         max_concurrent: int | None, out: TextIO, progress_every: float, *, restore: bool) -> Any:
    """Run (or restore and continue) one Tune experiment; returns its progress callback."""
    import ray
    from ray import tune

    from sweep.planned_search import PlannedTrials, UnfinishedFifo, keep_trials_pending
    from sweep.progress import SweepProgress  # imports ray
    from sweep.storage_guard import StorageGuard

    r = study.spec.resources
    resources = {"cpu": r.cpu, "gpu": r.gpu} if r.gpu else {"cpu": r.cpu}
    fs, tune_dir = filesystem(join_uri(study.study_uri, "tune"))
    path = f"{tune_dir}/{name}"
    if restore:
        problem = ("it names its trials by id in a plan of its own" if layout.read_text(
            _id_grid_plan_uri(study.study_uri, name)) is not None
            else None if tune.Tuner.can_restore(path, storage_filesystem=fs) else "Tune cannot restore it")
        problem = problem or state_problem(path, fs)
        if problem is not None:
            print(f"[orthosweep] Tune experiment {name} cannot be restored ({problem}); a fresh Tune run takes "
                  "over what the store says is left", file=out, flush=True)
            return None
    trainable = tune.with_resources(_wrap_trainable(fn, r.gpu, check_store=restore), resources)
    done = plan.done_keys if plan is not None else completed_run_keys(
        study.study_uri, [x.run_key for x in study.restarts])
    details = DetailsLog(study.name)
    guard = StorageGuard(study.study_uri, details)
    progress = SweepProgress(study.study_uri, len(study.restarts), done,
                             guard.guarded(functools.partial(record_failed_trial, study.study_uri, study.name)),
                             out=out, every=progress_every, experiment=name)
    evaluator = make_async_callback(study, out, progress_every) if async_metrics(study) else None
    callbacks: list[Any] = [guard, progress] + ([evaluator] if evaluator is not None else [])
    callbacks += tune_callbacks(study_loggers(study.trials), study.study_uri, study.name)
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    keep_trials_pending(ray.cluster_resources().get("CPU", 1.0))
    if restore:
        tuner = restore_tuner(path, trainable, fs, callbacks, stop=guard.stopper)
    else:
        assert plan is not None
        tuner = tune.Tuner(
            trainable,
            param_space={"study": study.name, "study_uri": study.study_uri},
            tune_config=tune.TuneConfig(
                search_alg=PlannedTrials([t.to_dict() for t in plan.trials]), num_samples=len(plan.trials),
                scheduler=UnfinishedFifo(), reuse_actors=True, trial_dirname_creator=_trial_dirname,
                max_concurrent_trials=max_concurrent or r.max_concurrent_trials or None),
            run_config=tune.RunConfig(
                name=name, storage_path=tune_dir, storage_filesystem=fs, verbose=0, callbacks=callbacks,
                stop=guard.stopper, failure_config=tune.FailureConfig(max_failures=r.max_failures)),
        )
    with storage_faults_to(details, study.study_uri, guard.seen):
        tuner.fit()
    if guard.fault is not None:  # the trials were stopped at the first write that failed
        raise guard.fault
    if evaluator is not None:  # the trials are done; their checkpoints' evaluations may still be running
        evaluator.tracker.wait_all()
    return progress
