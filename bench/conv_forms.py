"""The two forms of the seed-batched convolutions, timed side by side in the trainer's own step.

    PYTHONPATH=. python bench/conv_forms.py [--cases conv_dsprites,conv_shapes3d] [--seeds 1,4,8]
        [--precisions fp32] [--subset 1024] [--steps 5] [--rounds 3] [--json OUT]

`workers.models.networks` runs the conv layers of a block of S seeds in one of `CONV_FORMS`: one grouped
convolution (groups = S, activations (B, S*C, H, W): "grouped"), S plain convolutions ("per_seed"), either
in channels-last memory order ("_cl"), or batched matrix products over unfolded patches ("im2col");
`conv_form_for(device)` picks the default. This bench
builds one real `workers.train.TrialRun` per (case, S, precision) on a device-resident training subset and
times its `train_step`, fed as `train_epoch` feeds it, in every form: `--rounds` rounds, each timing
`--steps` steps of each form in turn, so that drift of a shared machine falls on all; the figure per form
is the median over all its timed steps. It prints s/step, milliseconds per seed-step, the ratio to
"grouped", paper restarts per device-hour, and how far the form's losses on one batch from the same
parameters, and its codes, lie from the grouped form's (they compute the same function; the kernels round
differently).

With --cuda-graphs (CUDA only) each form is also timed replayed from the trainer's CUDA graph
(`train.cuda_graphs`, captured afresh per form): the per-seed forms launch S times the kernels of the grouped
ones, which a graph replays with one launch.

Defaults: on a CPU S = 1,4,8, fp32, 5 steps x 3 rounds; on CUDA S = 1,16,64, fp32,bf16, 10 steps x 3 rounds.
Imports no ray, duckdb or pydantic (runs on a GPU machine that has only torch and the scientific stack).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from gpu_throughput import failure, kind_for, make_sync, trial_for
from machine import describe

from workers.data import load
from workers.device import PRECISIONS, apply_device_plan, autocast, plan_device
from workers.models.networks import CONV_FORMS, conv_form_for
from workers.train import TrialRun

CASES = ("conv_dsprites", "conv_shapes3d", "factorvae_dsprites")


def set_form(run: TrialRun, form: str) -> None:
    run.vae.encoder.conv_form = run.vae.decoder.conv_form = form


def form_gaps(run: TrialRun, x: torch.Tensor, eps: torch.Tensor, forms: list[str]) -> dict[str, float]:
    """Per form, on one batch from the same parameters: the larger of the relative differences from the grouped
    form of the per-seed losses and of the codes mu, max |a - b| / max |b| each (the loss alone, a sum over
    4,096 pixels, hides differences below its own rounding)."""
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    with torch.no_grad(), autocast(run.plan):
        for form in ["grouped", *forms]:
            set_form(run, form)
            t = run.vae.terms(run.params.leaves, x, eps, step=run.step, dataset_size=run.data.n,
                              disc_params=None if run.disc is None else run.disc.leaves,
                              perm=None if run.disc is None else
                              torch.arange(x.shape[1], device=x.device).view(1, -1, 1)
                              .expand(x.shape[0], -1, run.vae.latent_dim).contiguous())
            out[form] = (t.loss.float(), t.mu.float())

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))

    return {f: max(rel(a, b) for a, b in zip(out[f], out["grouped"], strict=True)) for f in forms}


def time_forms(run: TrialRun, forms: list[str], steps: int, rounds: int, warmup: int) -> dict[str, list[float]]:
    """Seconds of each timed step per form, the forms taking turns within each round."""
    B, d = run.batch_size, run.vae.latent_dim
    k = warmup + steps
    order = run.streams.epoch_order(run.data.n, min(k, run.steps_per_epoch), B).to(run.device)
    eps = run.streams.noise(k, B, d).to(run.device)
    perm = run.streams.shuffles(k, B, d).to(run.device) if run.disc is not None else None
    sync = make_sync(run.device)
    times: dict[str, list[float]] = {f: [] for f in forms}
    for _ in range(rounds):
        for form in forms:
            set_form(run, form)
            for t in range(k):
                sync()
                t0 = time.perf_counter()
                run.train_step(run.data.batch(order[:, t % order.shape[1]]), eps[:, t],
                               None if perm is None else perm[:, t])
                sync()
                if t >= warmup:
                    times[form].append(time.perf_counter() - t0)
    return times


def time_graphed(run: TrialRun, form: str, steps: int, rounds: int, warmup: int) -> float | str:
    """Median s/step of `form` replayed from a step graph captured for it, or why not measured."""
    set_form(run, form)
    run.step_graph = None  # a graph holds the kernels of the form it was captured with
    if not run.enable_step_graph():
        return run.graph_note
    t = time_forms(run, [form], steps, rounds, warmup)[form]
    if run.step_graph is None:
        return run.graph_note
    run.step_graph = None
    return statistics.median(t)


def parse_args(argv: list[str] | None = None, *, on_cpu: bool) -> argparse.Namespace:
    """The command line, checked and with the defaults of this device kind filled in (cases, forms, seeds,
    precisions as lists; steps as a number)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="conv_dsprites,conv_shapes3d", help=f"from {', '.join(CASES)}")
    ap.add_argument("--forms", default=",".join(CONV_FORMS), help=f"from {', '.join(CONV_FORMS)}")
    ap.add_argument("--seeds", default=None, help="seeds per trial S (CPU default 1,4,8; CUDA 1,16,64)")
    ap.add_argument("--precisions", default=None, help="CPU: fp32 only; CUDA default fp32,bf16")
    ap.add_argument("--subset", type=int, default=1024, help="training images (held on the device)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per form and round (CPU 5, CUDA 10)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps at the start of each round")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--cuda-graphs", action="store_true", help="also time each form replayed from a CUDA graph")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    args.cases = args.cases.split(",")
    for c in args.cases:
        if c not in CASES:
            ap.error(f"--cases: unknown {c!r}; choose from {', '.join(CASES)}")
    args.forms = args.forms.split(",")
    for f in args.forms:
        if f not in CONV_FORMS:
            ap.error(f"--forms: unknown {f!r}; choose from {', '.join(CONV_FORMS)}")
    args.seeds = [int(s) for s in (args.seeds or ("1,4,8" if on_cpu else "1,16,64")).split(",")]
    args.precisions = (args.precisions or ("fp32" if on_cpu else "fp32,bf16")).split(",")
    for p in args.precisions:
        if p not in PRECISIONS or (on_cpu and p != "fp32"):
            ap.error(f"--precisions: {p!r} cannot run here (CPU: fp32; CUDA: {', '.join(PRECISIONS)})")
    args.steps = args.steps or (5 if on_cpu else 10)
    return args


def main(argv: list[str] | None = None) -> int:
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    on_cpu = device.type == "cpu"
    args = parse_args(argv, on_cpu=on_cpu)
    if args.threads:
        torch.set_num_threads(args.threads)
    cases, forms, seeds, precisions, steps = args.cases, args.forms, args.seeds, args.precisions, args.steps
    command = f"PYTHONPATH=. python {shlex.join(sys.argv)}"
    where = f"CUDA {torch.cuda.get_device_name(device)}" if not on_cpu else \
        f"CPU (torch threads: {torch.get_num_threads()})"
    unit = "CPU" if on_cpu else "GPU"
    print(describe())
    print(f"command: {command}\ndevice: {where}; default form here: {conv_form_for(device)}")
    if on_cpu:
        print("NO CUDA DEVICE: every figure below is a CPU figure")
    print(f"\n{'case':<19} {'prec':<5} {'S':>3} {'form':<10} {'s/step':>9} {'ms/seed':>8} {'x grouped':>9} "
          f"{'rest./' + unit + '-h':>11} {'gap':>9} {'graph s/st':>10} {'graph rest./h':>13}")
    out: dict[str, Any] = {"machine": describe(), "command": command, "device": where, "cpu_figures": on_cpu,
                           "default_form": conv_form_for(device), "forms": forms, "cases": [],
                           "not_measured": []}

    def save() -> None:
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))

    def measure(name: str, kind: Any, ds: Any, restart_steps: int, precision: str, S: int) -> None:
        plan = plan_device(gpus=None if not on_cpu else 0, precision=precision)
        apply_device_plan(plan)
        if args.threads:
            torch.set_num_threads(args.threads)
        run = TrialRun(trial_for(kind, S, precision, args.subset), study="bench", study_uri=None,
                       plan=plan, dataset=ds)
        x = run.data.batch(torch.arange(S * run.batch_size, device=device).view(S, -1) % run.data.n)
        gaps = form_gaps(run, x, torch.zeros(S, run.batch_size, run.vae.latent_dim, device=device), forms)
        times = time_forms(run, forms, steps, args.rounds, args.warmup)
        med = {f: statistics.median(v) for f, v in times.items()}
        graphed: dict[str, float | str] = {f: "--cuda-graphs not given" for f in forms}
        if args.cuda_graphs:
            graphed = {f: time_graphed(run, f, steps, args.rounds, args.warmup) if not on_cpu
                       else "CUDA only" for f in forms}
        for f in forms:
            rate = S * 3600 / (med[f] * restart_steps)
            ratio = med[f] / med["grouped"] if "grouped" in med else None
            g = graphed[f]
            g_rate = S * 3600 / (g * restart_steps) if isinstance(g, float) else None
            out["cases"].append({"case": name, "precision": precision, "S": S, "form": f,
                                 "default": f == conv_form_for(device), "s_per_step": med[f],
                                 "restarts_per_hour": rate, "over_grouped": ratio, "gap": gaps[f],
                                 "timed_steps": len(times[f]), "restart_steps": restart_steps,
                                 "graphed_s_per_step": g if isinstance(g, float) else None,
                                 "graphed_restarts_per_hour": g_rate,
                                 "graphed_note": None if isinstance(g, float) else g})
            mark = "*" if f == conv_form_for(device) else ""
            print(f"{name:<19} {precision:<5} {S:>3} {f + mark:<10} {med[f]:>9.4g} {1e3 * med[f] / S:>8.3g} "
                  f"{'-' if ratio is None else f'{ratio:.2f}x':>9} {rate:>11.3g} {gaps[f]:>9.1e} "
                  f"{f'{g:.4g}' if isinstance(g, float) else '-':>10} "
                  f"{f'{g_rate:.3g}' if g_rate is not None else '-':>13}", flush=True)
            if args.cuda_graphs and not on_cpu and not isinstance(g, float):
                print(f"   CUDA graph: {g}")
        save()

    datasets: dict[str, Any] = {}
    for name in cases:
        kind = kind_for(name)
        ds = datasets.setdefault(kind.dataset, load(kind.dataset))
        restart_steps = kind.epochs * (len(ds.split_indices("train")) // kind.batch)
        for precision in precisions:
            for S in seeds:
                try:
                    measure(name, kind, ds, restart_steps, precision, S)
                except Exception as e:  # noqa: BLE001 -- one failing case must not cost the session's others
                    why = failure(e)
                    out["not_measured"].append({"case": name, "precision": precision, "S": S, "why": why})
                    print(f"{name:<19} {precision:<5} {S:>3} not measured ({why})", flush=True)
                    save()
    print(f"columns: s/step = median wall seconds of the trainer's train_step over {steps} steps x {args.rounds} "
          "rounds per form (forms taking turns); ms/seed = s/step / S; x grouped = s/step / grouped s/step (< 1: "
          "faster than grouped); rest./h = S*3600/(s/step*steps of one paper restart); gap = max relative "
          "difference of the form's per-seed losses and codes from grouped's on one batch; graph = the same step "
          "replayed from the trainer's CUDA graph (--cuda-graphs); * = this device's default form")
    mods = {m: m in sys.modules for m in ("ray", "duckdb", "pydantic")}
    print(f"imported: ray {mods['ray']}, duckdb {mods['duckdb']}, pydantic {mods['pydantic']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
