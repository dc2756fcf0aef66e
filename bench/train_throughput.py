"""Seed vectorisation throughput: restarts/hour of one S-seed block vs S sequential single-seed runs.

    .venv/bin/python bench/train_throughput.py [--threads 1] [--steps 20] [--seeds 1,4,16,64]

For synth_nonlin (paper MLP 60-40-20 tanh, Adam) and dSprites (paper MLP 1200-1200 ReLU / 1200-1200-1200
tanh, Adagrad; a 4,096-image training subset) it times real training steps of `workers.train.TrialRun`
(batch gather, forward, backward, optimiser, divergence mask) for a block of S seeds and for a single seed,
measured side by side in one run, and converts them to restarts per hour of the paper's schedule
(synth_nonlin: 600 epochs x 625 steps; dSprites: 50 epochs x 9,216 steps). Ratio = block rate / rate of
S sequential single-seed runs (= S * t_1 / t_S). Evaluation time is not included.

It also prints the achieved GFLOP/s of the dSprites MLP training step (counted from the layer shapes:
forward 2·in·out per example and layer, backward twice that except the input gradient of the first
layer) against this machine's measured float32 matmul rate (torch.mm 2048x2048x2048, same threads), and
what bounds it: the forward and backward passes timed alone, and the memory traffic of the rest of the step
(finiteness check, optimiser update) against the measured one-thread copy bandwidth.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from machine import describe

from sweep.spec import validate_study
from workers.device import plan_device
from workers.train import TrialRun
from workers.trial import TrialSpec

SCHEDULE = {"synth_nonlin": (600, 625), "dsprites": (50, 737_280 * 8 // 10 // 64)}  # (epochs, steps/epoch)
SUBSET = {"synth_nonlin": None, "dsprites": 4096}
CLOCK = time.process_time  # CPU seconds of this process (all its threads); see time_steps


def trial_for(dataset: str, seeds: int) -> TrialSpec:
    train = {"seeds_per_trial": seeds, "epochs": 1, "checkpoints": [0, 1], "batch_size": 64}
    if SUBSET[dataset]:
        train["max_train"] = SUBSET[dataset]
    study = validate_study({"study": "bench", "grid": {"dataset": [dataset], "model": ["beta_vae"], "seeds": seeds},
                            "train": train, "eval": {"metrics": ["polarized"]}})
    return study.trials[0]


def time_steps(run: TrialRun, steps: int, warmup: int = 2) -> float:
    """Seconds per training step of the block: the fastest of `steps` timed steps after `warmup`, in CPU
    time of this process (`CLOCK`): on a shared, overloaded machine wall time mostly measures the wait for a
    core, CPU time and the minimum are the least disturbed estimates of the step's own cost."""
    B, d = run.batch_size, run.vae.latent_dim
    order = run.streams.epoch_order(run.data.n, run.steps_per_epoch, B).to(run.device)
    eps = run.streams.noise(warmup + steps, B, d).to(run.device)
    times = []
    for t in range(warmup + steps):
        t0 = CLOCK()
        run.train_step(run.data.batch(order[:, t % run.steps_per_epoch]), eps[:, t], None)
        if t >= warmup:
            times.append(CLOCK() - t0)
    return min(times)


def mlp_step_flops(run: TrialRun) -> float:
    """FLOPs of one training step of the whole block (dense layers only; elementwise work not counted)."""
    macs_fwd = first_in = 0
    for name, e in run.vae.layout.entries.items():
        if name.endswith(".weight"):
            macs_fwd += e.shape[0] * e.shape[1]
            if name == "enc.fc0.weight":
                first_in = e.shape[0] * e.shape[1]
    per_example = 2 * macs_fwd + 2 * macs_fwd + 2 * (macs_fwd - first_in)
    return per_example * run.batch_size * run.S


def step_breakdown(run: TrialRun, steps: int, warmup: int = 2) -> dict[str, float]:
    """CPU seconds (best of `steps`) of the phases of `TrialRun.train_step`, run here piece by piece: the
    forward pass, the backward pass (both matmul-bound), and the memory-bound rest (the finiteness check,
    one read of the gradients, and the fused optimiser update, which reads them where autograd left them)."""
    B, d = run.batch_size, run.vae.latent_dim
    order = run.streams.epoch_order(run.data.n, run.steps_per_epoch, B).to(run.device)
    eps = run.streams.noise(warmup + steps, B, d).to(run.device)
    best = {"forward": math.inf, "backward": math.inf, "memory-bound rest": math.inf}
    for t in range(warmup + steps):
        x = run.data.batch(order[:, t % run.steps_per_epoch])
        t0 = CLOCK()
        terms = run.vae.terms(run.params.leaves, x, eps[:, t], step=run.step, dataset_size=run.data.n)
        total = terms.loss.sum()
        t1 = CLOCK()
        grads = torch.autograd.grad(total, run.params.leaf_list, allow_unused=True)
        t2 = CLOCK()
        run.alive &= torch.isfinite(terms.loss) & run.params.rows_finite(grads)
        run.opt.step(run.alive, grads)
        t3 = CLOCK()
        if t >= warmup:
            for k, v in zip(best, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                best[k] = min(best[k], v)
    return best


def matmul_rate(threads: int, n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = math.inf
    for _ in range(reps):
        t0 = CLOCK()
        torch.mm(a, b)
        best = min(best, CLOCK() - t0)
    return 2 * n**3 / best / 1e9


def copy_bandwidth(mbytes: int = 256, reps: int = 5) -> float:
    """GB/s of one thread streaming through memory: bytes read + written by a large tensor copy."""
    src = torch.ones(mbytes * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = math.inf
    for _ in range(reps):
        t0 = CLOCK()
        dst.copy_(src)
        best = min(best, CLOCK() - t0)
    return 2 * src.numel() * 4 / best / 1e9


def rest_traffic_bytes(run: TrialRun) -> int:
    """Bytes the memory-bound rest moves at least, per step: the finiteness check reads the gradient once;
    the fused optimiser reads parameters, gradient and its n state buffers and writes parameters and state
    (1 + (2 + n) + (1 + n) passes over P floats; Adagrad n = 1, Adam n = 2)."""
    n = len(run.opt.state_names)
    return (4 + 2 * n) * run.params.data.numel() * run.params.data.element_size()


def fits_in_memory(dataset: str, seeds: int) -> bool:
    """Parameters, gradients, one or two optimiser states and activations must fit in half the free RAM."""
    probe = TrialRun(trial_for(dataset, 1), study="bench", study_uri=None, plan=plan_device(gpus=0))
    need = probe.vae.layout.size * 4 * 4 * seeds  # data, grad, Adam's two moments
    try:
        with open("/proc/meminfo") as fh:
            avail = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable"))
    except (OSError, StopIteration):
        return True
    return need < avail / 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (a trial with resources.cpu=1 uses 1)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per measurement (dSprites: a quarter)")
    ap.add_argument("--seeds", default="1,4,16,64", help="block sizes S")
    ap.add_argument("--datasets", default="synth_nonlin,dsprites")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(describe())
    print(f"threads={args.threads}; times are CPU seconds of this process, best of the timed steps; block and "
          f"single seed measured side by side (t_1 re-timed next to every S)\n")
    peak = matmul_rate(args.threads)
    bandwidth = copy_bandwidth()
    for dataset in args.datasets.split(","):
        epochs, steps_per_epoch = SCHEDULE[dataset]
        restart_steps = epochs * steps_per_epoch
        steps = args.steps if dataset != "dsprites" else max(3, args.steps // 4)
        print(f"== {dataset} (paper MLP, {epochs} epochs x {steps_per_epoch} steps per restart; "
              f"training subset {SUBSET[dataset] or 'all'})")
        print(f"{'S':>4} {'t_S s/step':>11} {'t_1 s/step':>11} {'block rest./h':>14} {'sequential rest./h':>19} "
              f"{'ratio':>7}")
        one = TrialRun(trial_for(dataset, 1), study="bench", study_uri=None, plan=plan_device(gpus=0))
        for S in (int(s) for s in args.seeds.split(",")):
            if not fits_in_memory(dataset, S):
                print(f"{S:>4}  skipped: {S} seeds of this model do not fit in half the available memory")
                continue
            block = TrialRun(trial_for(dataset, S), study="bench", study_uri=None, plan=plan_device(gpus=0))
            t1 = time_steps(one, steps)
            tS = time_steps(block, steps)
            t1 = min(t1, time_steps(one, steps))  # t_1 measured before and after t_S
            block_rate = S * 3600 / (tS * restart_steps)
            seq_rate = 3600 / (t1 * restart_steps)
            print(f"{S:>4} {tS:>11.5f} {t1:>11.5f} {block_rate:>14.2f} {seq_rate:>19.2f} "
                  f"{block_rate / seq_rate:>6.2f}x", flush=True)
            if dataset == "dsprites":
                gflops = mlp_step_flops(block) / tS / 1e9
                print(f"     dSprites MLP step: {gflops:.1f} GFLOP/s achieved vs {peak:.1f} GFLOP/s float32 matmul "
                      f"(torch.mm 2048^3) = {100 * gflops / peak:.0f}% of the measured limit", flush=True)
            del block
        if dataset == "dsprites":
            parts = step_breakdown(one, steps)
            flops = mlp_step_flops(one)
            mm = parts["forward"] + parts["backward"]
            print("     where a single seed's step goes: " + ", ".join(f"{k} {1000 * v:.1f} ms"
                                                                   for k, v in parts.items()))
            print(f"     forward+backward alone: {flops / mm / 1e9:.1f} GFLOP/s = {100 * flops / mm / 1e9 / peak:.0f}% "
                  f"of the measured matmul rate (batch 64 makes the weight-gradient matmuls K = 64 thin)")
            moved = rest_traffic_bytes(one)
            rate = moved / parts["memory-bound rest"] / 1e9
            print(f"     memory-bound rest: moves >= {moved / 1e6:.0f} MB per step = {rate:.1f} GB/s effective, "
                  f"vs {bandwidth:.1f} GB/s measured for a one-thread copy of 256 MB (it runs at memory speed; "
                  f"without it the step could reach the forward+backward rate above)")
        print()


if __name__ == "__main__":
    main()
