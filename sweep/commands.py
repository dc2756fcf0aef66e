"""CLI commands of the sweep service: validate, submit, resume, evaluate, status, compact."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

from sweep import perturb, step_figures
from sweep.extensions import after_sweep

EXIT_OK, EXIT_FAILED_RESTARTS, EXIT_BAD_INPUT, EXIT_STORAGE = 0, 1, 2, 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="validate a study file and print its size (nothing is scheduled)")
    p.add_argument("study", help="study YAML file")
    p.add_argument("--storage", help="override the file's storage")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("submit", help="run a study on Ray (in-process local Ray unless --address is given)")
    p.add_argument("study", help="study YAML file")
    p.add_argument("--storage", help="override the file's storage (local path or s3://bucket/prefix?...)")
    _ray_args(p, with_jobs=True)
    p.add_argument("--dry-run", action="store_true", help="print restarts, trials, the resource plan and an "
                   "estimate of device-hours from a short calibration on this machine; schedule nothing")
    p.add_argument("--no-calibrate", "--no-estimate", dest="no_calibrate", action="store_true",
                   help="with --dry-run: count and plan only (no timing, no device-hour estimate)")
    p.add_argument("--step-figures", metavar="FILE", help="with --dry-run: recorded s/step figures to reuse "
                   "(default $ORTHOSWEEP_CACHE/step_figures.json, which bench/gpu_throughput.py and earlier dry-runs "
                   "write); a cost measured there on this device is not measured again")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("resume", help="continue an interrupted sweep from its study folder")
    p.add_argument("study_dir", help="<storage>/<study> folder (or URI) holding study.yaml")
    _ray_args(p, with_jobs=False)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("evaluate", help="score stored checkpoints with any registered metric, without retraining")
    p.add_argument("study_dir", help="<storage>/<study> folder (or URI) holding study.yaml and models/")
    p.add_argument("--metrics", default=None, help="comma-separated registry names, e.g. sap,dci,udr "
                   "(default: the study's eval.metrics); `orthosweep views` lists the columns each writes")
    p.add_argument("--epochs", default="all", help="checkpoint epochs to score, e.g. 0,50 (default: all)")
    p.add_argument("--force", action="store_true", help="recompute metrics already in the store (the latest "
                   "evaluation wins in the checkpoints view; earlier ones stay in evaluations_raw)")
    p.add_argument("--address", help="Ray cluster (auto, ray://HEAD:10001, HEAD:6379); default: an in-process "
                   "Ray on this machine")
    p.add_argument("--cpus-per-task", type=float, default=1.0, help="CPUs per evaluation task (default 1)")
    p.add_argument("--gpus-per-task", type=float, default=0.0, help="GPU share per evaluation task for the "
                   "encoder and decoder passes (default 0: CPU)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("status", help="restarts done/running/failed/remaining per (dataset, model)")
    p.add_argument("study_dir", help="<storage>/<study> folder (or URI) holding study.yaml")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("compact", help="merge each partition's small Parquet files into one (views unchanged)")
    p.add_argument("study_dir", help="<storage>/<study> folder (or URI)")
    p.set_defaults(func=cmd_compact)

    p = sub.add_parser("perturb", help="train an ε-perturbation of a dataset from a study's most and least "
                       "disentangled restarts (thesis §4.2); writes <storage>/perturbations/NAME")
    perturb.add_arguments(p)
    p.set_defaults(func=cmd_perturb)


def _ray_args(p: argparse.ArgumentParser, *, with_jobs: bool) -> None:
    jobs = "http://HEAD:8265 (submit as a Ray job and follow it to its end), " if with_jobs else ""
    if with_jobs:
        p.add_argument("--no-wait", action="store_true", help="with --address http://...: return once the job "
                       "is submitted instead of following it")
    p.add_argument("--address", help=f"Ray cluster: {jobs}auto or ray://HEAD:10001 (driver on the cluster); "
                   "default: an in-process Ray on this machine, listening on localhost only")
    p.add_argument("--max-concurrent", type=int, default=None, help="at most N trials at once "
                   "(default: the study's resources.max_concurrent_trials)")
    p.add_argument("--trainable", default=None, help="module:function of the Tune function trainable "
                   "(default: workers.train:tune_trainable)")
    p.add_argument("--logger", action="append", choices=("tensorboard", "mlflow", "wandb"), default=None,
                   help="live training curves (repeatable; replaces the study's train.loggers): tensorboard "
                   "(<study>/tensorboard), mlflow (file store <study>/mlruns), wandb (offline, <study>/wandb); "
                   "each needs its extra, e.g. pip install 'orthosweep[tensorboard]'")
    p.add_argument("--force", action="store_true", help="take the study over from a driver whose heartbeat is "
                   "stale (over 120 s old: a driver on another host that may be dead); a live driver is never "
                   "displaced")


def cmd_validate(args: argparse.Namespace) -> int:
    from sweep.spec import load_study

    study = load_study(args.study, storage=args.storage, planned=True)
    print(f"{study.name}: {len(study.restarts)} restarts in {len(study.trials)} trials -> {study.study_uri}")
    _planned_note(study)
    return 0


def _planned_note(study) -> None:  # noqa: ANN001 - sweep.spec.Study (imported lazily)
    for folder in study.planned:
        print(f"note: perturbation folder {folder!r} does not exist yet: `orthosweep perturb ... --name ...` "
              "writes it (see the study file's comments); `submit` refuses the study until then",
              file=sys.stderr)
    for path in study.absent_files:
        n = sum(path in map(str, r.config.dataset_options.values()) for r in study.restarts)
        print(f"note: dataset path {path!r} is not on this machine: its {n} restarts are counted; put the official "
              "file(s) there (`orthosweep datasets` says which) before `submit`, which refuses the study until then",
              file=sys.stderr)


def _dry_run(study, args: argparse.Namespace) -> int:
    import threading

    from sweep.driver import describe_plan, plan_sweep

    _planned_note(study)
    calibration = worker = None
    failed: list[BaseException] = []
    if not args.no_calibrate:
        from sweep.estimate import Calibration

        if args.step_figures and not os.path.isfile(args.step_figures):
            return _bad(f"--step-figures: {args.step_figures!r} is not a file; run bench/gpu_throughput.py "
                        "(it writes $ORTHOSWEEP_CACHE/step_figures.json) or give the file it wrote")
        try:
            figures = step_figures.load(args.step_figures)
        except ValueError as e:
            return _bad(f"--step-figures: {e}")
        record_to = None if args.step_figures else step_figures.default_path()  # a file given is only read
        calibration = Calibration(study, figures=figures, record_to=record_to)

        def measure() -> None:
            try:
                calibration.measure(study.trials)
            except BaseException as e:  # noqa: BLE001 - re-raised by the main thread below
                failed.append(e)

        # The timings run while the store is read (object storage can take seconds to answer): they cover every
        # trial, and the estimate below counts the pending ones only.
        worker = threading.Thread(target=measure, name="dry-run calibration", daemon=True)
        worker.start()
    try:
        plan = plan_sweep(study)
    except OSError as e:  # the store may live on a cluster's object storage this machine cannot reach
        print(f"note: store {study.study_uri} not readable from here ({str(e).splitlines()[0]}); "
              "counting every restart as pending", file=sys.stderr)
        plan = plan_sweep(study, done=set())
    print(describe_plan(study, plan, args.max_concurrent), flush=True)
    if calibration is not None and worker is not None:
        calibration.cancelled = not plan.trials  # nothing left to estimate: stop timing, but never mid-part
        worker.join()
        if failed:
            raise failed[0]
        if plan.trials:
            print(calibration.estimate(plan.trials).describe())
    return EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    from sweep.preflight import PreflightError, address_kind, check_address
    from sweep.spec import load_study

    if args.step_figures and not args.dry_run:
        return _bad("--step-figures is read only by --dry-run (the device-hour estimate); drop it or add --dry-run")
    study = load_study(args.study, storage=args.storage, planned=args.dry_run, overrides=_logger_overrides(args))
    if args.max_concurrent is not None and args.max_concurrent < 1:
        return _bad(f"--max-concurrent: got {args.max_concurrent}; must be >= 1")
    if args.dry_run:
        return _dry_run(study, args)
    if address_kind(args.address) == "jobs":
        from sweep.jobs import submit_job

        try:
            check_address(args.address)
        except PreflightError as e:
            return _bad(str(e))
        if "://" not in study.storage:
            print(f"warning: storage {study.storage!r} is a local path: it must exist on the cluster's head "
                  "and workers (use shared storage such as s3://bucket/prefix)", file=sys.stderr)
        job_id = submit_job(study, args.address, max_concurrent=args.max_concurrent, trainable=args.trainable)
        print(f"submitted {study.name} as Ray job {job_id} to {args.address}\n"
              f"  follow:  ray job logs --address {args.address} --follow {job_id}\n"
              f"  status:  orthosweep status {study.study_uri}", flush=True)
        return EXIT_OK if args.no_wait else _follow(args.address, job_id)
    return _run(study, args, resume=False)


def _logger_overrides(args: argparse.Namespace) -> dict | None:
    """--logger as a study override (train.loggers), or None when not given."""
    return None if args.logger is None else {"train": {"loggers": sorted(set(args.logger))}}


def _follow(address: str, job_id: str) -> int:
    """Follow a submitted job to its end: 0 when it succeeded, else its error and last log lines and 1."""
    from sweep.jobs import follow_job, job_client

    print(f"following job {job_id} until it ends (Ctrl-C detaches; the job keeps running)", flush=True)
    end = follow_job(job_client(address), job_id)
    if end.ok:
        return EXIT_OK
    print(f"error: Ray job {job_id} {end.status.lower()}: {end.message or 'no message from Ray'}\n"
          "  last lines of its log:\n" + "\n".join(f"    {line}" for line in end.tail or ["(empty)"]),
          file=sys.stderr)
    return EXIT_FAILED_RESTARTS


def cmd_resume(args: argparse.Namespace) -> int:
    try:
        study = load_study_dir(args.study_dir, overrides=_logger_overrides(args))
    except FileNotFoundError as e:
        return _bad(str(e))
    return _run(study, args, resume=True)


def _run(study: object, args: argparse.Namespace, *, resume: bool) -> int:
    from sweep.driver import DEFAULT_TRAINABLE, run_sweep
    from sweep.lease import LeaseHeld, held
    from sweep.preflight import PreflightError, check_address, check_storage
    from sweep.storage_errors import StorageFault, fault_of

    uri = study.study_uri  # type: ignore[attr-defined]
    try:
        check_address(args.address)  # the edges first: nothing is leased (or written) for a sweep that cannot run
        check_storage(uri)
        with held(uri, command="resume" if resume else "submit", force=args.force, out=sys.stdout):
            outcome = run_sweep(study, address=args.address, max_concurrent=args.max_concurrent,  # type: ignore[arg-type]
                                resume=resume, trainable=args.trainable or DEFAULT_TRAINABLE)
    except (PreflightError, LeaseHeld) as e:
        return _bad(str(e))
    except (StorageFault, OSError) as e:
        fault = fault_of(e, uri)
        if fault is None:
            raise
        print(fault.message(_complete_in_store(study), len(study.restarts)), file=sys.stderr)  # type: ignore[attr-defined]
        return EXIT_STORAGE
    print(f"[orthosweep] {outcome.done}/{outcome.total} restarts done, {outcome.failed} failed "
          f"({outcome.trained} scheduled by this run, {outcome.seconds:.1f} s"
          + (f"; {outcome.evaluated} metric rows from the evaluation stage)" if outcome.evaluated else ")"))
    for err in outcome.eval_errors:
        print(f"error: evaluation task {err} (`orthosweep evaluate {study.study_uri}` retries it)",  # type: ignore[attr-defined]
              file=sys.stderr)
    for text in after_sweep(study.study_uri):  # type: ignore[attr-defined]
        print(text, flush=True)
    if outcome.failed:
        print(f"[orthosweep] {outcome.failed} restarts failed (status 'failed' with the error in the store); "
              f"`orthosweep resume {study.study_uri}` retries them", file=sys.stderr)  # type: ignore[attr-defined]
        return EXIT_FAILED_RESTARTS
    return EXIT_OK


def _complete_in_store(study) -> int | None:  # noqa: ANN001 - sweep.spec.Study (imported lazily)
    """Restarts complete in the store, None when it cannot be read."""
    from workers.store.restarts import final_states

    try:
        return sum(1 for s in final_states(study.study_uri, [r.run_key for r in study.restarts]).values() if s.done)
    except Exception:  # noqa: BLE001 - a vanished bucket cannot be counted; the message says so
        return None


def _bad(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def load_study_dir(study_dir: str, overrides: dict | None = None):  # noqa: ANN201 - sweep.spec.Study (lazy)
    """The Study stored in `<storage>/<study>/study.yaml`, read from that folder (which may have been copied or
    renamed: then a warning says so, and the store is still the folder given); `overrides` deep-merge over it."""
    from sweep.spec import deep_merge, validate_study
    from workers.store import layout

    storage, _ = layout.split_study_dir(study_dir)
    data = layout.read_study_yaml(study_dir)
    if data is None:
        raise FileNotFoundError(f"{study_dir!r} holds no study.yaml: expected the folder written by "
                                "`orthosweep submit` (<storage>/<study>)")
    layout.warn_renamed(study_dir, data.get("study"))
    data = deep_merge(data, overrides or {})
    data["storage"] = storage
    study = validate_study(data, source=f"{study_dir}/study.yaml")
    return dataclasses.replace(study, folder=study_dir)


def _epochs(text: str) -> list[int] | None:
    if text.strip() == "all":
        return None
    try:
        out = [int(e) for e in text.split(",") if e.strip()]
    except ValueError:
        raise ValueError(f"--epochs: got {text!r}; give comma-separated integers such as 0,50, or all") from None
    if not out or min(out) < 0:
        raise ValueError(f"--epochs: got {text!r}; give non-negative epochs such as 0,50, or all")
    return out


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sweep.evaluate import EvaluationError, check_metrics, run_evaluation
    from sweep.preflight import PreflightError, address_kind, check_address

    try:
        if address_kind(args.address) == "jobs":
            raise ValueError(f"--address {args.address}: evaluate runs its driver here; give the cluster's Ray "
                             "address (auto on the head, or ray://HEAD:10001), not the Jobs API's http:// URL")
        study = load_study_dir(args.study_dir)
        epochs = _epochs(args.epochs)
        metrics = check_metrics([args.metrics]) if args.metrics is not None else None
        if args.cpus_per_task <= 0 or args.gpus_per_task < 0:
            raise ValueError("--cpus-per-task must be > 0 and --gpus-per-task >= 0")
        check_address(args.address)
        outcome = run_evaluation(study, metrics=metrics, epochs=epochs, force=args.force, address=args.address,
                                 cpus_per_task=args.cpus_per_task, gpus_per_task=args.gpus_per_task)
    except (FileNotFoundError, ValueError, EvaluationError, PreflightError) as e:
        return _bad(str(e))
    print(f"[orthosweep] evaluate: {outcome.jobs} tasks, {outcome.rows} metric rows written "
          f"({outcome.failed_metrics} undefined for their model) in {outcome.seconds:.1f} s")
    for err in outcome.errors:
        print(f"error: evaluation task {err}", file=sys.stderr)
    return EXIT_FAILED_RESTARTS if outcome.errors else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from sweep.status import plan_status, study_status
    from workers.store import layout
    from workers.store.plan import read_plan

    plan = read_plan(args.study_dir)
    if plan is not None:  # the expansion submit wrote for this very study.yaml: no spec validation needed
        layout.warn_renamed(args.study_dir, plan.study)
        print(plan_status(plan, args.study_dir, now=time.time()))
        return EXIT_OK
    try:
        study = load_study_dir(args.study_dir)
    except FileNotFoundError as e:
        return _bad(str(e))
    print(study_status(study, now=time.time()))
    return EXIT_OK


def cmd_compact(args: argparse.Namespace) -> int:
    from workers.store.compact import compact_study

    r = compact_study(args.study_dir)
    print(f"compacted {args.study_dir}: {r.files_before} files -> {r.files_after} in {r.partitions} partitions "
          f"({r.rows} rows, unchanged)")
    return EXIT_OK


def cmd_perturb(args: argparse.Namespace) -> int:
    return perturb.main(args)
