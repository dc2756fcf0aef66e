"""`orthosweep perturb`: the driver side of the optimised dataset perturbation (thesis §4.2.3–4.3.1).

    orthosweep perturb STUDY_DIR --dataset D --epsilon E --name NAME [--ensemble K] [--steps N] [--out PATH|URI]
                       [--model beta_vae] [--config-key PREFIX] [--batch-size 64] [--seed 0] [--force]
                       [--address ADDR] [--cpus 1] [--gpus auto]

1. From the study's store (the `runs` view: each restart at its last checkpoint), the finished restarts
   (status ok, last checkpoint = final epoch, MIG present) of `--model` (β-VAE) on dataset D with unaltered data,
   less the over-pruned ones (fewer active units than D has factors: a collapsed code's low MIG says nothing
   about entanglement; how many were excluded is printed and recorded): the K with the highest MIG are the
   disentangled sources, the K with the lowest the entangled ones (ties by run key). They must share one
   configuration's dataset options; with several configurations, `--config-key` chooses one.
2. One Ray task (`workers.perturbation.train.make_perturbation`; 1 GPU when the cluster has one, else CPU) trains
   m and writes `<storage>/perturbations/<NAME>/` (or `--out`): manipulation.pt, perturbation.yaml,
   contact_sheet.png (workers/data/perturbation_folder.py). The objective (L_rec of the entangled minus the
   disentangled decoders) is measured before and after training; when it fell by less than `--min-fall` of
   the initial reconstruction loss, nothing is written and the command exits 2 saying so.
3. A study then uses it with the dataset option `perturbation: <that folder>`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("study_dir", help="<storage>/<study> folder (or URI) of the source study (trained β-VAE restarts)")
    p.add_argument("--dataset", required=True, help="dataset of the source restarts and of the perturbation")
    p.add_argument("--epsilon", type=float, required=True, help="ε: ‖x' − x‖∞ ≤ ε (thesis: 0.1 dSprites, "
                   "0.175 Shapes3D)")
    p.add_argument("--name", required=True, help="folder name under <storage>/perturbations/")
    p.add_argument("--ensemble", type=int, default=1, help="K most disentangled and K most entangled restarts "
                   "(default 1; the thesis used 4 on Shapes3D)")
    p.add_argument("--steps", type=int, default=5000, help="manipulation steps, each after 3 decoder steps "
                   "(default 5000; the thesis does not state its number)")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    p.add_argument("--model", default="beta_vae", help="objective of the source restarts (default beta_vae)")
    p.add_argument("--config-key", default=None, help="restrict the sources to one configuration (a prefix of "
                   "its config_key), when the study holds several of --model on --dataset")
    p.add_argument("--seed", type=int, default=0, help="seed of m's initialisation, the batches and the latent "
                   "samples (default 0)")
    p.add_argument("--out", default=None, help="write the folder here (path or URI) instead of "
                   "<storage>/perturbations/<NAME>")
    p.add_argument("--force", action="store_true", help="replace an existing perturbation folder")
    p.add_argument("--min-fall", type=float, default=0.05, help="required fall of the objective (L_rec entangled − "
                   "L_rec disentangled) from before to after training, as a fraction of the initial mean "
                   "reconstruction loss (default 0.05); less: nothing is written, exit 2")
    p.add_argument("--address", help="Ray cluster (auto, ray://HEAD:10001, HEAD:6379); default: an in-process Ray "
                   "on this machine")
    p.add_argument("--cpus", type=float, default=1.0, help="CPUs for the task (default 1)")
    p.add_argument("--gpus", type=float, default=None, help="GPUs for the task (default: 1 if the cluster has a "
                   "GPU, else 0)")


class PerturbError(ValueError):
    """Bad arguments or a source study that cannot supply the restarts (exit 2, nothing scheduled)."""


def select_sources(study_dir: str, dataset: str, k: int, model: str = "beta_vae", config_key: str | None = None
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any], int]:
    """(disentangled, entangled, base dataset options, over-pruned restarts excluded): the K highest- and K
    lowest-MIG finished restarts that keep at least one active unit per factor."""
    from workers.data.catalog import DATASETS
    from workers.store.views import connect

    try:
        con = connect(study_dir)
    except FileNotFoundError as e:
        raise PerturbError(str(e)) from None
    rows = con.execute(
        "SELECT run_key, config_key, seed, epoch, epochs, status, mig, config, active_units FROM runs "
        "WHERE dataset = ? AND model = ? ORDER BY run_key", [dataset, model]).fetchall()
    cols = ("run_key", "config_key", "seed", "epoch", "epochs", "status", "mig", "config", "active_units")
    runs = [dict(zip(cols, r, strict=True)) for r in rows]
    if not runs:
        have = con.execute("SELECT DISTINCT dataset || '/' || model FROM runs ORDER BY 1").fetchall()
        raise PerturbError(f"{study_dir} holds no {model} restarts on {dataset} (it holds: "
                           f"{', '.join(h[0] for h in have) or 'nothing'})")
    for r in runs:
        r["options"] = json.loads(r["config"]).get("dataset_options", {})
    altered = [r for r in runs if any(r["options"].get(o) is not None for o in ("perturbation", "noise"))]
    runs = [r for r in runs if r not in altered]
    if config_key:
        runs = [r for r in runs if r["config_key"].startswith(config_key)]
    ok = [r for r in runs if r["status"] == "ok" and r["epoch"] == r["epochs"] and r["mig"] is not None]
    factors = DATASETS[dataset].num_factors if dataset in DATASETS else 0
    pruned = [r for r in ok if r["active_units"] is not None and r["active_units"] < factors]
    ok = [r for r in ok if r not in pruned]
    keys = sorted({r["config_key"] for r in ok})
    if len(keys) > 1:
        counts = ", ".join(f"{c} ({sum(r['config_key'] == c for r in ok)} restarts, options "
                           f"{json.dumps(next(r['options'] for r in ok if r['config_key'] == c), sort_keys=True)})"
                           for c in keys)
        raise PerturbError(f"{study_dir}: the {model} restarts on {dataset} span {len(keys)} configurations: {counts}; "
                           "choose one with --config-key (the thesis picks among restarts of one configuration)")
    if len(ok) < 2 * k:
        no_mig = sum(1 for r in runs if r["status"] == "ok" and r["epoch"] == r["epochs"] and r["mig"] is None)
        hint = (f"; {no_mig} finished restarts lack MIG: `orthosweep evaluate {study_dir} --metrics mig`" if no_mig
                else "; train more seeds or wait for the study to finish (`orthosweep status`)")
        if pruned:
            hint = (f"; {len(pruned)} over-pruned restarts (fewer than {factors} active units) were excluded"
                    + hint)
        raise PerturbError(f"--ensemble {k} needs {2 * k} finished {model} restarts on {dataset} with a MIG "
                           f"(status ok at the final epoch, unaltered data, not over-pruned), {study_dir} has "
                           f"{len(ok)}{hint}")
    ranked = sorted(ok, key=lambda r: (-float(r["mig"]), r["run_key"]))
    strip = ("options", "status", "epochs", "active_units")
    dis = [{k_: v for k_, v in r.items() if k_ not in strip} for r in ranked[:k]]
    ent = [{k_: v for k_, v in r.items() if k_ not in strip} for r in ranked[::-1][:k]]
    base = {o: v for o, v in ranked[0]["options"].items() if o not in ("perturbation", "noise")}
    for r in dis + ent:
        r["mig"], r["seed"], r["epoch"] = float(r["mig"]), int(r["seed"]), int(r["epoch"])
    return dis, ent, base, len(pruned)


def plan(args: argparse.Namespace) -> dict[str, Any]:
    """The Ray task's job: arguments checked, sources selected (raises PerturbError)."""
    from workers.data.catalog import DATASETS
    from workers.data.perturbation_folder import META_FILE
    from workers.store.layout import join_uri, read_text, split_study_dir

    if args.dataset not in DATASETS or DATASETS[args.dataset].num_factors == 0:
        with_factors = [d for d, i in DATASETS.items() if i.num_factors]
        raise PerturbError(f"--dataset {args.dataset!r}: expected a dataset with ground-truth factors "
                           f"({', '.join(with_factors)})")
    image = DATASETS[args.dataset].kind == "image"
    if not args.epsilon > 0 or (image and args.epsilon > 1):
        raise PerturbError(f"--epsilon {args.epsilon}: must be > 0{' and <= 1 on images in [0, 1]' if image else ''} "
                           "(thesis: 0.1 dSprites, 0.175 Shapes3D)")
    if not NAME.match(args.name):
        raise PerturbError(f"--name {args.name!r}: use letters, digits, '_', '-', '.' (a folder name)")
    for flag, v in (("--ensemble", args.ensemble), ("--steps", args.steps), ("--batch-size", args.batch_size)):
        if v < 1:
            raise PerturbError(f"{flag} {v}: must be a positive integer")
    if args.cpus <= 0 or (args.gpus is not None and args.gpus < 0):
        raise PerturbError("--cpus must be > 0 and --gpus >= 0")
    study_dir = args.study_dir
    if "://" not in study_dir:  # the task may run in another working directory
        study_dir = os.path.abspath(os.path.expanduser(study_dir))
    storage, study = split_study_dir(study_dir)
    out = args.out or join_uri(storage, "perturbations", args.name)
    if "://" not in out:
        out = os.path.abspath(os.path.expanduser(out))
    if read_text(join_uri(out, META_FILE)) is not None and not args.force:
        raise PerturbError(f"{out} already holds a perturbation (studies may depend on it); give another --name or "
                           "--out, or --force to replace it")
    dis, ent, options, pruned = select_sources(study_dir, args.dataset, args.ensemble, args.model, args.config_key)
    return {"study_uri": study_dir, "study": study, "dataset": args.dataset, "dataset_options": options,
            "epsilon": float(args.epsilon), "out": out, "name": args.name, "disentangled": dis, "entangled": ent,
            "steps": int(args.steps), "batch_size": int(args.batch_size), "seed": int(args.seed), "lr": 1e-4,
            "model": args.model, "force": bool(args.force), "min_fall": float(args.min_fall),
            "excluded_overpruned": pruned}


def run(args: argparse.Namespace) -> int:
    from sweep.preflight import PreflightError, address_kind, check_address
    from sweep.ray_session import ray_session

    if address_kind(args.address) == "jobs":
        raise PerturbError(f"--address {args.address}: perturb runs its driver here; give the cluster's Ray address "
                           "(auto on the head, or ray://HEAD:10001), not the Jobs API's http:// URL")
    job = plan(args)
    try:
        check_address(args.address)
    except PreflightError as e:
        raise PerturbError(str(e)) from None
    def names(rows: list[dict[str, Any]]) -> str:
        return ", ".join("{} (MIG {:.3f})".format(r["run_key"], r["mig"]) for r in rows)

    print(f"[orthosweep] perturb {job['dataset']} ε={job['epsilon']:g}: disentangled {names(job['disentangled'])}; "
          f"entangled {names(job['entangled'])}; {job['excluded_overpruned']} over-pruned restarts (fewer active "
          f"units than factors) excluded; {job['steps']} steps", flush=True)
    with ray_session(args.address):
        import ray

        from workers.perturbation.train import make_perturbation

        gpus = args.gpus if args.gpus is not None else (1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0)
        ref = ray.remote(make_perturbation).options(num_cpus=args.cpus, num_gpus=gpus, max_retries=1).remote(job)
        result = ray.get(ref)
    print(outcome(job, result))
    return 0


def outcome(job: dict[str, Any], result: dict[str, Any]) -> str:
    """What `perturb` prints about the task's result; PerturbError (exit 2) when nothing was written because
    the objective did not fall by --min-fall."""
    check = result["losses"]["check"]
    if not result["written"]:
        raise PerturbError(f"the manipulation did not work, nothing written to {result['folder']}: "
                           f"{objective_line(check)}; below the required fall of {check['min_relative_fall']:.1%} "
                           "(--min-fall). Try more --steps, a larger --epsilon, or sources that really split "
                           "(their MIGs are printed above)")
    return (f"[orthosweep] wrote {result['folder']} in {result['seconds']:.1f} s on {result['training']['device']}: "
            f"{objective_line(check)}\n"
            f"  use it in a study:  perturbation: {result['folder']}   (dataset {job['dataset']}, options "
            f"{json.dumps(job['dataset_options'], sort_keys=True)})")


def objective_line(check: dict[str, Any]) -> str:
    """The objective check in words: initial -> final objective and each set's L_rec, and the relative fall."""
    a, b = check["initial"], check["final"]
    return (f"objective (L_rec entangled − disentangled) {a['objective']:.4g} -> {b['objective']:.4g} "
            f"(fell by {check['relative_fall']:.1%} of the initial L_rec; L_rec entangled {a['rec_entangled']:.4g} "
            f"-> {b['rec_entangled']:.4g}, disentangled {a['rec_disentangled']:.4g} -> {b['rec_disentangled']:.4g})")


def main(args: argparse.Namespace) -> int:
    try:
        return run(args)
    except PerturbError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
