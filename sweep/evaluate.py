"""The evaluation stage on the driver: stored checkpoints -> Ray tasks -> `evaluations` rows (design.md §6).

    run_evaluation(study, metrics=[...])     what `orthosweep evaluate` runs, and what `submit` / `resume`
                                             run after training to finish every pending evaluation
    AsyncEvaluations(study, trials)          the Tune callback of `eval.mode: async`: at each checkpoint a
                                             trial reports, the CPU metrics of its ok restarts go to Ray
                                             tasks while the trial trains on

The store decides what is pending (`workers.store.pending`): a task lost with its node is retried by Ray
(`max_retries`); one lost with the driver is found pending by the next `submit`, `resume` or `evaluate`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from sweep.ray_session import ray_session
from sweep.spec import Study, unknown_name
from sweep.status import format_seconds
from workers.metrics.registry import METRICS
from workers.store.pending import Pending, StoredCheckpoint, pending_evaluations, stored_models
from workers.trial import TrialSpec

TASK_RETRIES = 3  # a task whose worker or node dies is rerun this many times


class EvaluationError(ValueError):
    """Nothing can be evaluated as asked (no stored models, unknown metric, bad epochs): exit 2."""


@dataclass
class EvaluationOutcome:
    jobs: int  # tasks run (one per checkpoint, one per configuration group and metric)
    rows: int  # evaluations rows written
    failed_metrics: int  # rows written with status failed (the metric is undefined for that model)
    errors: list[str]  # tasks that raised (a bug, or retries exhausted): nothing written for them
    seconds: float


def _task_options(cpus: float, gpus: float) -> dict[str, Any]:
    return {"num_cpus": cpus, "num_gpus": gpus, "max_retries": TASK_RETRIES}


def _jobs(study: Study, pending: Pending, attempt: int) -> list[tuple[str, dict[str, Any]]]:
    """(kind, job dict) for every pending evaluation; kind names the worker function."""
    eval_cfg = study.eval.as_dict()
    base = {"study": study.name, "study_uri": study.study_uri, "attempt": attempt, "eval": eval_cfg}
    jobs = [("checkpoint", base | {"checkpoint": dataclasses.asdict(cp), "metrics": list(metrics)})
            for cp, metrics in sorted(pending.checkpoint_jobs.items(), key=lambda kv: (kv[0].epoch, kv[0].run_key))]
    jobs += [("group", base | {"metric": m, "config_key": ck, "epoch": ep,
                               "checkpoints": [dataclasses.asdict(cp) for cp in members]})
             for (ck, ep, m), members in sorted(pending.group_jobs.items())]
    return jobs


def _submit(kind: str, job: dict[str, Any], options: dict[str, Any]) -> Any:
    import ray

    from workers.evaluation import evaluate_stored_checkpoint, evaluate_stored_group

    fn = evaluate_stored_checkpoint if kind == "checkpoint" else evaluate_stored_group
    return ray.remote(fn).options(**options).remote(job)


class _Tracker:
    """Waits for submitted evaluation tasks, printing progress and an ETA every `every` seconds."""

    def __init__(self, out: TextIO, every: float, label: str):
        self.out, self.every, self.label = out, every, label
        self.refs: dict[Any, str] = {}  # ObjectRef -> what it evaluates
        self.total = self.done = self.rows = self.failed = 0
        self.errors: list[str] = []
        self.started = time.time()
        self._last = 0.0

    def add(self, ref: Any, what: str) -> None:
        self.refs[ref] = what
        self.total += 1

    def poll(self, timeout: float = 0.0) -> None:
        import ray

        if not self.refs:
            return
        ready, _ = ray.wait(list(self.refs), num_returns=len(self.refs), timeout=timeout)
        for ref in ready:
            what = self.refs.pop(ref)
            self.done += 1
            try:
                res = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - a task that raised: reported, the others go on
                self.errors.append(f"{what}: {str(e).strip().splitlines()[-1]}")
                continue
            self.rows += res["rows"]
            self.failed += res["failed"]
        self._print()

    def _print(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last < self.every:
            return
        self._last = now
        elapsed = now - self.started
        eta = (elapsed / self.done * (self.total - self.done)) if self.done else None
        print(f"[orthosweep] {self.label}: {self.done}/{self.total} evaluation tasks done, {self.rows} metric rows "
              f"({self.failed} undefined, {len(self.errors)} tasks raised), elapsed {format_seconds(elapsed)}, "
              f"ETA {format_seconds(eta) if eta is not None else '?'}", file=self.out, flush=True)

    def wait_all(self) -> None:
        while self.refs:
            self.poll(timeout=min(self.every, 5.0))
        self._print(force=True)


def check_metrics(names: Sequence[str]) -> list[str]:
    """Metric names as given (comma lists split); unknown ones raise EvaluationError naming the registry."""

    out = [n.strip() for name in names for n in name.split(",") if n.strip()]
    bad = [unknown_name("--metrics", "metric", n, list(METRICS)) for n in out if n not in METRICS]
    if bad:
        raise EvaluationError("; ".join(bad))
    if not out:
        raise EvaluationError("--metrics: no metric named; e.g. --metrics sap,dci,udr")
    return list(dict.fromkeys(out))


def run_evaluation(study: Study, *, metrics: Iterable[str] | None = None, epochs: Iterable[int] | None = None,
                   force: bool = False, address: str | None = None, out: TextIO | None = None,
                   progress_every: float = 5.0, cpus_per_task: float = 1.0,
                   gpus_per_task: float = 0.0, after_training: bool = False) -> EvaluationOutcome:
    """Compute every pending evaluation of `metrics` (default: the study's `eval.metrics`) at `epochs`
    (default: all stored) as Ray tasks; `force` recomputes what is already stored. Uses the caller's Ray
    if one is running (the sweep), else starts one like `submit` does. `after_training` (the sweep's own
    pass): nothing to evaluate is not an error, and nothing is printed unless there is work."""
    out = out or sys.stdout
    started = time.time()
    names = check_metrics(list(metrics)) if metrics is not None else list(study.eval.metrics)
    pending = pending_evaluations(study.study_uri, names, epochs=epochs, force=force)
    if pending.evaluable == 0 and not after_training:
        if not stored_models(study.study_uri):
            raise EvaluationError(
                f"{study.study_uri} holds no stored models (models/<run_key>/e<epoch>.pt): nothing to evaluate; "
                "train the study first with `orthosweep submit`, which stores every checkpoint's weights")
        if epochs is not None:
            raise EvaluationError(f"--epochs {','.join(map(str, epochs))}: no stored checkpoint with status ok "
                                  "at these epochs (see `orthosweep sql` on the checkpoints view)")
    n_ck = len(pending.checkpoint_jobs)
    if after_training and pending.empty:
        return EvaluationOutcome(0, 0, 0, [], time.time() - started)
    print(f"[orthosweep] evaluate {study.name}: {', '.join(names)} — {pending.evaluable} stored checkpoints, "
          f"{n_ck} need checkpoint metrics, {len(pending.group_jobs)} configuration groups need "
          f"{'/'.join(m for m in names if METRICS[m].scope == 'configuration') or 'nothing'}"
          + (f"; {pending.without_weights} ok checkpoints have no stored weights" if pending.without_weights else ""),
          file=out, flush=True)
    if pending.empty:
        return EvaluationOutcome(0, 0, 0, [], time.time() - started)
    tracker = _Tracker(out, progress_every, "evaluate")
    with ray_session(address):
        options = _task_options(cpus_per_task, gpus_per_task)
        attempt = int(time.time())  # orders re-evaluations of the same metric written in one second
        for kind, job in _jobs(study, pending, attempt):
            what = (f"{job['checkpoint']['run_key']}@e{job['checkpoint']['epoch']}" if kind == "checkpoint"
                    else f"{job['metric']} of {job['config_key']}@e{job['epoch']}")
            tracker.add(_submit(kind, job, options), what)
        tracker.wait_all()
    return EvaluationOutcome(tracker.total, tracker.rows, tracker.failed, tracker.errors, time.time() - started)


def async_metrics(study: Study) -> list[str]:
    """The checkpoint metrics that the evaluation stage computes while trials train (eval.mode async)."""
    if study.eval.mode != "async":
        return []
    return [m for m in study.eval.metrics if METRICS[m].scope == "checkpoint" and not METRICS[m].device_side]


def make_async_callback(study: Study, out: TextIO, every: float) -> Any:
    """The Tune callback that hands each reported checkpoint's CPU metrics to Ray tasks (eval.mode async).
    Each trial's Tune config holds its TrialSpec.to_dict() under "trial"."""
    from ray import tune

    class AsyncEvaluations(tune.Callback):
        def __init__(self) -> None:
            self.metrics = async_metrics(study)
            self.tracker = _Tracker(out, every, "async evaluation")
            self.options = _task_options(1.0, 0.0)

        def __getstate__(self) -> dict[str, Any]:  # Tune pickles its RunConfig; refs do not pickle
            return {}

        def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                            **info: Any) -> None:
            keys = result.get("to_evaluate") or []
            spec_dict = trial.config.get("trial")
            if not keys or not self.metrics or spec_dict is None:
                return
            spec = TrialSpec.from_dict(spec_dict)
            epoch = int(result["epoch"])
            for i, rk in enumerate(spec.run_keys):
                if rk not in keys:
                    continue
                cols = spec.restart_columns(study.name, i)
                cp = StoredCheckpoint(rk, spec.config_key, cols["dataset"], cols["model"], int(cols["seed"]),
                                      epoch, _config_json(spec))
                job = {"study": study.name, "study_uri": study.study_uri, "attempt": 0,
                       "eval": study.eval.as_dict(), "checkpoint": dataclasses.asdict(cp), "metrics": self.metrics}
                self.tracker.add(_submit("checkpoint", job, self.options), f"{rk}@e{epoch}")
            self.tracker.poll()

    return AsyncEvaluations()


def _config_json(spec: TrialSpec) -> str:
    import json

    return json.dumps(spec.config.to_dict(), sort_keys=True)
