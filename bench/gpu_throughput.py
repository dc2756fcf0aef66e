"""GPU training throughput of the paper models: s/step, restarts per GPU-hour, TFLOP/s, optimiser GB/s.

    PYTHONPATH=. python bench/gpu_throughput.py [--small] [--cases mlp_dsprites,...] [--seeds 1,16,64]
        [--precisions fp32,tf32,bf16] [--data subset,full] [--steps 20] [--time-limit 540] [--json OUT]

Cases (model kinds): `mlp_dsprites` (the paper MLP β-VAE on dSprites, Adagrad, Rolínek et al. 2019),
`conv_dsprites` and `conv_shapes3d` (the disentanglement_lib conv β-VAE, Adam, Zietlow et al. 2021) and
`factorvae_dsprites` (the conv FactorVAE with its discriminator). Each is run for S seeds per trial, each
precision (`workers.device.PRECISIONS`) and two training sets: `subset` (the first --subset training images,
16,384 by default) and `full` (the whole training split). Either is held as `workers.train.TrainData` decides
for a real trial (its `mode`, printed: rows on the device, or gathered on the host per step); for `full` the
node cache of the dataset is built first, outside the timing (the steady state of a trial reads it).

What is timed is the real trainer: `workers.train.TrialRun` built from a `workers.trial.TrialSpec` (no Ray),
its `train_step` fed by `TrainData.batch` exactly as `TrialRun.train_epoch` does (gather, forward, backward,
finiteness mask, optimiser), trace rows off. Per case it prints:

- s/step: the median of --steps timed steps after warm-ups (wall clock, torch.cuda.synchronize on CUDA);
- restarts/h: S * 3600 / (s/step * steps of one paper restart); the schedules are read from the repository
  (sweep/defaults.py, studies/*.yaml) and printed with their source;
- TFLOP/s: FLOPs per seed-step counted from the layer shapes (see `layer_flops`) * S / (s/step), and its
  ratio to the matmul rate of the same precision measured in this run;
- opt GB/s: the bytes the optimiser update must move per step (read parameters, gradients and its state
  arrays, write parameters and state: (3 + 2n) * P * S * 4 bytes, n = 1 Adagrad, 2 Adam; FactorVAE adds its
  discriminator's Adam) divided by the time of `opt.step` timed alone, and its ratio to the measured
  device-to-device copy bandwidth (bytes read + written);
- ref: the same step written plainly in this file (`ReferenceStep`: separate leaf tensors, batched matmul,
  convolutions in the trainer's form on this device (bench/conv_forms.py compares the forms),
  loss.backward(), torch.optim foreach Adagrad/Adam, no flat buffer, no masking, no finiteness check, a
  device-resident batch pool) timed the same way; trainer/ref = t_trainer / t_ref;
- graph s/step (CUDA only, with --cuda-graphs): the trainer's step replayed from its CUDA graph, as a trial
  with `train.cuda_graphs: true` runs it (`time_trainer_graphed`): what removing launch overhead gives at
  small S; a capture that fails says why.

On a machine without CUDA every figure is a CPU figure (wall clock; torch's default threads, --small: 1),
precisions other than fp32 are not run (autocast is CUDA-only in workers/device.py), and the bounds are a float32
matmul and a memcpy. Nothing is printed that was not measured in the run; cases that did not run are
listed as such. `--json OUT` writes everything (rewritten after each case, so a killed run keeps what it
measured), including which of ray/duckdb/pydantic were imported (none should be). Each case's s/step is also
recorded in `$ORTHOSWEEP_CACHE/step_figures.json` (`--figures`), where `orthosweep submit --dry-run` on
this node uses it for a class of the same cost on the same device (sweep/step_figures.py).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import shlex
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from machine import describe

from sweep import step_figures
from sweep.defaults import DATASET_BETA, DATASET_DEFAULTS, TRAIN_DEFAULTS
from workers.data import load
from workers.data.catalog import DATASETS
from workers.device import apply_device_plan, autocast, plan_device
from workers.models.networks import KERNEL, PADDING, STRIDE, Conv, Dense, Network, Reshape, conv_form_for
from workers.train import TrialRun
from workers.trial import TrialSpec, stable_key

try:
    from workers.device import PRECISIONS
    PRECISION_NOTE = "precisions from workers.device.PRECISIONS"
except ImportError:  # the "tf32" mode may not be in this checkout yet
    PRECISIONS = ("fp32", "bf16")
    PRECISION_NOTE = "workers.device has no PRECISIONS: falling back to ('fp32', 'bf16'), tf32 not available"

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("mlp_dsprites", "conv_dsprites", "conv_shapes3d", "factorvae_dsprites")
ZIETLOW = "studies/zietlow2021_restarts.yaml"
ROLINEK = "studies/rolinek2019_restarts.yaml"


# ---- the cases and the paper schedules -----------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    name: str
    dataset: str
    model: str
    config: dict[str, Any]  # RestartConfig fields but dataset_options / max_train
    epochs: int
    batch: int
    source: str  # where the hyperparameters and the epoch count come from


def kind_for(name: str) -> Kind:
    """The configuration and the paper schedule of a model kind, read from the repository's defaults."""
    if name == "mlp_dsprites":
        d = DATASET_DEFAULTS["dsprites"]
        rolinek = yaml.safe_load((ROOT / ROLINEK).read_text())
        epochs = int(d["epochs"])
        if int(rolinek["train"]["epochs"]) != epochs:  # pragma: no cover - the two should agree
            raise SystemExit(f"{ROLINEK} train.epochs != sweep/defaults.py dsprites epochs")
        cfg = dict(model="beta_vae", hparams={"beta": DATASET_BETA["dsprites"]},
                   arch={"kind": "mlp", "encoder": d["encoder"], "decoder": d["decoder"],
                         "encoder_act": d["encoder_act"], "decoder_act": d["decoder_act"]},
                   latent_dim=d["latent_dim"], optimizer={"name": d["optimizer"], "lr": d["lr"]})
        return Kind(name, "dsprites", "beta_vae", cfg, epochs, int(TRAIN_DEFAULTS["batch_size"]),
                    f"sweep/defaults.py DATASET_DEFAULTS['dsprites'] (= {ROLINEK} train.epochs), "
                    f"batch TRAIN_DEFAULTS")
    study = yaml.safe_load((ROOT / ZIETLOW).read_text())
    dataset = name.split("_")[1]
    model = "factorvae" if name.startswith("factorvae") else "beta_vae"
    over = study["overrides"]
    hparams = {k: float(v[0]) for k, v in over.get(f"{dataset}/{model}", {}).items()}
    train = study["train"]
    cfg = dict(model=model, hparams=hparams,
               arch={"kind": "conv", "encoder": [], "decoder": [], "encoder_act": "relu", "decoder_act": "relu"},
               latent_dim=int(over[dataset]["latent_dim"]),
               optimizer={"name": train["optimizer"], "lr": float(train["lr"])})
    return Kind(name, dataset, model, cfg, int(over[dataset]["epochs"]), int(train["batch_size"]),
                f"{ZIETLOW} overrides.{dataset}.epochs, train.batch_size")


def trial_for(kind: Kind, seeds: int, precision: str, max_train: int | None) -> TrialSpec:
    """A TrialSpec built by hand (as tests/trainhelpers.py does): no sweep.spec, hence no pydantic."""
    config = {"dataset": kind.dataset, "dataset_options": {}, **kind.config,
              "likelihood": DATASETS[kind.dataset].likelihood, "epochs": kind.epochs, "batch_size": kind.batch,
              "max_train": max_train}
    ck = stable_key(config)
    return TrialSpec.from_dict(dict(
        trial_id=f"{ck[:10]}-bench", config_key=ck, config=config, seeds=list(range(seeds)),
        run_keys=[stable_key({**config, "seed": s}) for s in range(seeds)], checkpoints=[0, kind.epochs],
        trace_every=0, precision=precision, eval={"metrics": [], "n_eval": 64}))


# ---- FLOPs --------------------------------------------------------------------------------------------

def layer_flops(net: Network) -> list[float]:
    """Forward FLOPs per example of each Dense/Conv layer of `net`, in order.

    Dense(in, out): 2·in·out. Conv2d (k x k, c_in -> c_out, output H_o x W_o): 2·c_in·c_out·k²·H_o·W_o.
    ConvTranspose2d (input H_i x W_i): 2·c_in·c_out·k²·H_i·W_i (every input pixel scatters c_out·k² products).
    """
    out: list[float] = []
    hw = net.in_shape[1:] if len(net.in_shape) == 3 else None
    for layer in net.layers:
        if isinstance(layer, Dense):
            out.append(2.0 * layer.n_in * layer.n_out)
        elif isinstance(layer, Conv):
            assert hw is not None
            if layer.transpose:
                out.append(2.0 * layer.c_in * layer.c_out * KERNEL**2 * hw[0] * hw[1])
                hw = tuple((h - 1) * STRIDE - 2 * PADDING + KERNEL for h in hw)
            else:
                hw = tuple((h + 2 * PADDING - KERNEL) // STRIDE + 1 for h in hw)
                out.append(2.0 * layer.c_in * layer.c_out * KERNEL**2 * hw[0] * hw[1])
        elif isinstance(layer, Reshape):
            hw = layer.shape[1:] if len(layer.shape) == 3 else None
    return out


def step_flops_per_seed(run: TrialRun) -> float:
    """FLOPs of one training step of one seed (batch B), from the layer shapes; elementwise work not counted.

    Equal to torch.utils.flop_counter's count of one single-seed step (tests/test_bench_gpu_small.py checks it).
    Forward + backward = 3x the forward FLOPs of a layer (backward: the weight gradient and the input
    gradient, each as large as the forward), except where autograd skips the input gradient: the encoder's
    first layer (its input is data) counts 2x. FactorVAE's discriminator runs twice: on z with detached
    weights for the VAE's TC term (B examples: forward + input gradient, 2x) and on [z, permuted z] detached
    for its own loss (2B examples: 3x, its first layer 2x).
    """
    B = run.batch_size
    enc, dec = layer_flops(run.vae.encoder), layer_flops(run.vae.decoder)
    per_example = 3 * sum(enc) - enc[0] + 3 * sum(dec)
    if run.vae.discriminator is not None:
        disc = layer_flops(run.vae.discriminator)
        per_example += 2 * sum(disc) + 2 * (3 * sum(disc) - disc[0])
    return per_example * B


def opt_bytes(run: TrialRun) -> int:
    """Bytes one optimiser update must move for the whole block: read P params, P grads and n·P state,
    write P params and n·P state = (3 + 2n)·P·S·element size (plus the FactorVAE discriminator's Adam)."""
    total = 0
    for params, opt in ((run.params, run.opt), (run.disc, run.disc_opt)):
        if params is not None and opt is not None:
            total += (3 + 2 * len(opt.state_names)) * params.data.numel() * params.data.element_size()
    return total


# ---- timing -------------------------------------------------------------------------------------------

def make_sync(device: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def median_time(fn: Callable[[int], Any], steps: int, warmup: int, sync: Callable[[], None]) -> float:
    """Median wall seconds of fn(t) over `steps` calls after `warmup` untimed ones (synchronised)."""
    times = []
    for t in range(warmup + steps):
        sync()
        t0 = time.perf_counter()
        fn(t)
        sync()
        if t >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_trainer(run: TrialRun, steps: int, warmup: int) -> float:
    """s/step of `TrialRun.train_step` fed as `train_epoch` feeds it (positions, noise and FactorVAE
    shuffles drawn from the seeds' own streams on the host beforehand, as train_epoch does per chunk)."""
    B, d, k = run.batch_size, run.vae.latent_dim, warmup + steps
    order = run.streams.epoch_order(run.data.n, min(k, run.steps_per_epoch), B).to(run.device)
    eps = run.streams.noise(k, B, d).to(run.device)
    perm = run.streams.shuffles(k, B, d).to(run.device) if run.disc is not None else None
    n_order = order.shape[1]

    def step(t: int) -> None:
        run.train_step(run.data.batch(order[:, t % n_order]), eps[:, t], None if perm is None else perm[:, t])

    return median_time(step, steps, warmup, make_sync(run.device))


def time_trainer_graphed(run: TrialRun, steps: int, warmup: int) -> float | str:
    """s/step of the trainer's step replayed from its CUDA graph (`train.cuda_graphs`:
    `TrialRun.enable_step_graph`, workers/step_graph.py), fed as `time_trainer` feeds the eager step, or why
    it was not measured. Capture (with its warm-up passes) happens at the first of the `warmup` untimed steps."""
    if run.device.type != "cuda":
        return "CUDA only"
    if not run.enable_step_graph():
        return run.graph_note
    t = time_trainer(run, steps, max(1, warmup))
    if run.step_graph is None:  # the capture failed: the trainer went on eagerly and said why
        return run.graph_note
    return t


def time_trainer_optimiser(run: TrialRun, reps: int) -> float:
    """Median seconds of the trainer's optimiser update(s) alone, on gradients of one real step."""
    B, d = run.batch_size, run.vae.latent_dim
    x = run.data.batch(run.streams.epoch_order(run.data.n, 1, B)[:, 0].to(run.device))
    eps = run.streams.noise(1, B, d)[:, 0].to(run.device)
    perm = run.streams.shuffles(1, B, d)[:, 0].to(run.device) if run.disc is not None else None
    with autocast(run.plan):
        terms = run.vae.terms(run.params.leaves, x, eps, step=run.step, dataset_size=run.data.n,
                              disc_params=None if run.disc is None else run.disc.leaves, perm=perm)
    total = terms.loss.sum() + (terms.disc_loss.sum() if terms.disc_loss is not None else 0)
    leaves = run.params.leaf_list + (run.disc.leaf_list if run.disc is not None else [])
    grads = torch.autograd.grad(total, leaves, allow_unused=True)
    g_main, g_disc = grads[:len(run.params.leaf_list)], grads[len(run.params.leaf_list):]
    del terms, total

    def step(_: int) -> None:
        run.opt.step(run.alive, g_main)
        if run.disc_opt is not None:
            run.disc_opt.step(run.alive, g_disc)

    return median_time(step, reps, 1, make_sync(run.device))


class ReferenceStep:
    """The same architecture, objective and batch size written plainly: one leaf tensor (S, *shape) per
    parameter, torch.baddbmm for dense layers, conv layers in the trainer's form on this device
    (`conv_form_for`: grouped convolutions with groups = S, or one plain convolution per seed),
    loss.backward(), torch.optim's foreach Adagrad/Adam; no flat buffer, no divergence mask, no finiteness
    check, batches gathered from a device-resident pool. A floor for what the trainer's step could cost."""

    def __init__(self, run: TrialRun, pool: torch.Tensor):
        self.run, self.pool, self.S, self.B = run, pool, run.S, run.batch_size
        dev = run.device
        self.enc = self._leaves(run.vae.encoder, dev)
        self.dec = self._leaves(run.vae.decoder, dev)
        params = [p for layer in (*self.enc, *self.dec) for p in layer]
        lr = run.cfg.optimizer.lr
        opt_cls = {"adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam}[run.cfg.optimizer.name]
        self.opts = [opt_cls(params, lr=lr, foreach=True)]
        self.disc = None
        if run.vae.discriminator is not None:
            self.disc = self._leaves(run.vae.discriminator, dev)
            self.opts.append(torch.optim.Adam([p for layer in self.disc for p in layer], lr=1e-4,
                                              betas=(0.5, 0.9), foreach=True))

    def _leaves(self, net: Network, dev: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for layer in net.layers:
            if isinstance(layer, Dense):
                shape, fan = (layer.n_in, layer.n_out), layer.n_in
                n_out = layer.n_out
            elif isinstance(layer, Conv):
                shape = (layer.c_in, layer.c_out, KERNEL, KERNEL) if layer.transpose else \
                    (layer.c_out, layer.c_in, KERNEL, KERNEL)
                fan, n_out = shape[1] * KERNEL**2, layer.c_out
            else:
                continue
            bound = 1 / math.sqrt(fan)
            w = (torch.rand(self.S, *shape, device=dev) * 2 - 1).mul_(bound).requires_grad_()
            b = (torch.rand(self.S, n_out, device=dev) * 2 - 1).mul_(bound).requires_grad_()
            out.append((w, b))
        return out

    def _net(self, net: Network, leaves: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor,
             detach: bool = False) -> torch.Tensor:
        S, B = x.shape[0], x.shape[1]
        grouped = conv_form_for(x.device) == "grouped"
        conv_in = isinstance(net.layers[0], Conv)
        if conv_in:
            h = x.transpose(0, 1).reshape(B, S * x.shape[2], *x.shape[3:]) if grouped else list(x.unbind(0))
        else:
            h = x.reshape(S, B, -1)
        it = iter(leaves)
        acts = {"relu": torch.relu, "tanh": torch.tanh, "none": lambda v: v,
                "leaky_relu": lambda v: F.leaky_relu(v, 0.2)}
        for layer in net.layers:
            if isinstance(layer, Reshape):
                if len(layer.shape) == 1:
                    h = h.reshape(B, S, -1).transpose(0, 1) if grouped else torch.stack(h).reshape(S, B, -1)
                else:
                    h = h.transpose(0, 1).reshape(B, S * layer.shape[0], *layer.shape[1:]) if grouped else \
                        list(h.reshape(S, B, *layer.shape).unbind(0))
                continue
            w, b = next(it)
            if detach:
                w, b = w.detach(), b.detach()
            if isinstance(layer, Dense):
                h = acts[layer.act](torch.baddbmm(b.unsqueeze(1), h, w))
            else:
                conv = F.conv_transpose2d if layer.transpose else F.conv2d
                if grouped:
                    h = acts[layer.act](conv(h, w.reshape(-1, *w.shape[2:]), b.reshape(-1), stride=STRIDE,
                                             padding=PADDING, groups=S))
                else:
                    h = [acts[layer.act](conv(hs, ws, bs, stride=STRIDE, padding=PADDING))
                         for hs, ws, bs in zip(h, w.unbind(0), b.unbind(0), strict=True)]
        if isinstance(net.layers[-1], Conv):
            h = h.reshape(B, S, -1, *h.shape[2:]).transpose(0, 1) if grouped else torch.stack(h)
        return h.reshape(S, B, *net.out_shape)

    def forward_backward(self) -> None:
        S, B, vae = self.S, self.B, self.run.vae
        d, dev = vae.latent_dim, self.run.device
        x = self.pool[torch.randint(0, self.pool.shape[0], (S, B), device=dev)]
        with autocast(self.run.plan):
            h = self._net(vae.encoder, self.enc, x)
            mu, logvar = h[..., :d], h[..., d:]
            z = mu + torch.exp(0.5 * logvar) * torch.randn(S, B, d, device=dev)
            out = self._net(vae.decoder, self.dec, z)
            recon = F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(2).sum(-1)
            kl = (0.5 * (mu.square() + logvar.exp() - logvar - 1)).sum(-1)
            if self.disc is None:
                loss = (recon + vae.hparams["beta"] * kl).mean(1).sum()
            else:
                tc = self._net(vae.discriminator, self.disc, z, detach=True)
                zd = z.detach()
                perm = torch.rand(S, B, d, device=dev).argsort(dim=1)
                both = self._net(vae.discriminator, self.disc, torch.cat([zd, zd.gather(1, perm)], dim=1))
                lz, lp = F.log_softmax(both[:, :B].float(), -1), F.log_softmax(both[:, B:].float(), -1)
                disc_loss = -0.5 * (lz[..., 0].mean(1) + lp[..., 1].mean(1))
                loss = ((recon + kl).mean(1) + vae.hparams["gamma"] * (tc[..., 0] - tc[..., 1]).mean(1)).sum() \
                    + disc_loss.sum()
        loss.backward()

    def step(self, _: int = 0) -> None:
        for opt in self.opts:
            opt.zero_grad(set_to_none=True)
        self.forward_backward()
        for opt in self.opts:
            opt.step()

    def optimiser_step(self, _: int = 0) -> None:
        for opt in self.opts:
            opt.step()


# ---- device bounds ------------------------------------------------------------------------------------

# TF32 switches. torch >= 2.9 has per-backend `fp32_precision` ("ieee" | "tf32" | "none" = inherit) beside the
# legacy `allow_tf32` flags, and its cuBLAS/cuDNN dispatch raises when the two disagree ("mix of the legacy and
# new APIs"). The legacy setters keep both in step (and workers/device.py uses them), so this file sets only
# through them and reads through the new getters, which never raise.

def tf32_state() -> dict[str, str]:
    """The effective float32 precision of CUDA matmuls and cuDNN convolutions: 'tf32' or 'ieee'."""
    try:
        knobs = {"matmul": torch.backends.cuda.matmul.fp32_precision,
                 "conv": torch.backends.cudnn.conv.fp32_precision}
    except AttributeError:  # pragma: no cover - torch < 2.9
        return {"matmul": "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee",
                "conv": "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"}
    inherited = torch.backends.fp32_precision
    return {k: "tf32" if (v if v != "none" else inherited) == "tf32" else "ieee" for k, v in knobs.items()}


@contextlib.contextmanager
def tf32_flags(matmul: str | None = None):
    """Run with the matmul TF32 switch set ('tf32' | 'ieee'; None keeps it) and restore both switches after
    (whatever the code inside set: workers.device.apply_device_plan sets them per precision)."""
    saved = tf32_state()
    try:
        if matmul is not None:
            torch.backends.cuda.matmul.allow_tf32 = matmul == "tf32"
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved["matmul"] == "tf32"
        torch.backends.cudnn.allow_tf32 = saved["conv"] == "tf32"


def device_bounds(device: torch.device, precisions: list[str]) -> dict[str, float]:
    """Measured in this run: matmul TFLOP/s per precision and copy GB/s (bytes read + written)."""
    sync = make_sync(device)
    out: dict[str, float] = {}
    if device.type == "cuda":
        n, reps = 8192, 10
        specs = {"fp32": (torch.float32, "ieee"), "tf32": (torch.float32, "tf32"), "bf16": (torch.bfloat16, None)}
    else:
        n, reps = 2048, 5
        specs = {"fp32": (torch.float32, None)}
    for p in precisions:
        if p not in specs:
            continue
        dtype, tf32 = specs[p]
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        with tf32_flags(tf32):
            t = median_time(lambda _, a=a, b=b: torch.mm(a, b), reps, 2, sync)
        out[f"matmul_tflops_{p}"] = 2 * n**3 / t / 1e12
        del a, b
    nbytes = (2**30 if device.type == "cuda" else 256 * 2**20)
    src = torch.ones(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    t = median_time(lambda _, src=src, dst=dst: dst.copy_(src), 10 if device.type == "cuda" else 5, 2, sync)
    out["copy_gbs"] = 2 * nbytes / t / 1e9
    del src, dst
    return out


# ---- one case -----------------------------------------------------------------------------------------

def precision_flags(plan: Any) -> str:
    """The matmul/conv precision a step under this plan actually gets (read inside its autocast)."""
    if plan.device.type != "cuda":
        return "cpu fp32"
    with autocast(plan):
        bf16 = torch.is_autocast_enabled("cuda")
        state = tf32_state()
    return f"autocast {'bf16' if bf16 else 'off'}, float32 matmul {state['matmul']}, float32 conv {state['conv']}"


def run_case(kind: Kind, dataset: Any, S: int, precision: str, max_train: int | None, args: argparse.Namespace,
             device: torch.device, bounds: dict[str, float], restart_steps: int,
             keep: dict[str, Any]) -> dict[str, Any]:
    """Time one (kind, data, precision, S). `keep` holds the previous case's device-resident training rows so
    that the next trial of the same data reuses that copy (as trials sharing a process do) instead of
    copying gigabytes again."""
    plan = plan_device(gpus=None if device.type == "cuda" else 0, precision=precision)
    with tf32_flags():  # whatever the plan switches on stays inside this case
        apply_device_plan(plan)
        run = TrialRun(trial_for(kind, S, precision, max_train), study="bench", study_uri=None, plan=plan,
                       dataset=dataset)
        keep["rows"] = getattr(run.data, "rows", None)
        flags = precision_flags(plan)
        t_step = time_trainer(run, args.steps, args.warmup)
        if args.figures != "none":  # for `submit --dry-run` on this node (sweep.step_figures)
            step_figures.record(step_figures.cost_key(run), t_step, args.steps, args.command, args.figures)
        t_opt = time_trainer_optimiser(run, args.opt_reps)
        t_graph = time_trainer_graphed(run, args.steps, args.warmup) if args.cuda_graphs else "--cuda-graphs not given"
        m = min(run.data.n, 4096)  # the reference's batch pool: the first m training images, on the device
        pool = run.data.batch(torch.arange(m, device=device).view(1, m))[0]
        ref = ReferenceStep(run, pool)
        sync = make_sync(device)
        t_ref = median_time(ref.step, args.steps, args.warmup, sync)
        t_ref_opt = median_time(ref.optimiser_step, args.opt_reps, 1, sync)
    flops = step_flops_per_seed(run) * S
    moved = opt_bytes(run)
    ref_moved = sum((3 + 2 * {torch.optim.Adagrad: 1, torch.optim.Adam: 2}[type(o)])
                    * sum(p.numel() * p.element_size() for g in o.param_groups for p in g["params"])
                    for o in ref.opts)
    peak = bounds.get(f"matmul_tflops_{precision}")
    out = {
        "case": kind.name, "dataset": kind.dataset, "model": kind.model, "arch": kind.config["arch"]["kind"],
        "data": "subset" if max_train else "full", "n_train": run.data.n, "data_on_device": run.data.on_device,
        "data_mode": getattr(run.data, "mode", "device" if run.data.on_device else "host"),
        "data_device_bytes": getattr(run.data, "device_bytes", None),
        "precision": precision, "precision_flags": flags, "S": S, "batch": run.batch_size,
        "params_per_seed": run.vae.layout.size + (run.vae.disc_layout.size if run.vae.disc_layout else 0),
        "optimizer": run.cfg.optimizer.name, "optimizer_update": run.opt.update_path, "s_per_step": t_step,
        "restart_steps": restart_steps, "restarts_per_hour": S * 3600 / (t_step * restart_steps),
        "flops_per_seed_step": flops / S, "tflops": flops / t_step / 1e12,
        "frac_of_matmul_peak": None if peak is None else flops / t_step / 1e12 / peak,
        "opt_s": t_opt, "opt_bytes": moved, "opt_gbs": moved / t_opt / 1e9,
        "opt_frac_of_copy": moved / t_opt / 1e9 / bounds["copy_gbs"],
        "ref_s_per_step": t_ref, "trainer_over_ref": t_step / t_ref,
        "ref_opt_s": t_ref_opt, "ref_opt_gbs": ref_moved / t_ref_opt / 1e9,
        "graphed_s_per_step": t_graph if isinstance(t_graph, float) else None,
        "graphed_note": None if isinstance(t_graph, float) else t_graph,
    }
    del run, ref, pool
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


# ---- main ---------------------------------------------------------------------------------------------

def failure(e: BaseException) -> str:
    """A case's error in one line for the results, its traceback (except for running out of memory) on stderr,
    kept in the session's log; the memory it held is freed. A bench run on a lent GPU measures the cases after
    a failing one rather than stopping there."""
    if not isinstance(e, torch.OutOfMemoryError):
        traceback.print_exc()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"


def _graphed(r: dict[str, Any]) -> str:
    return "-" if r["graphed_s_per_step"] is None else f"{r['graphed_s_per_step']:.4g}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true",
                    help="CPU-sized smoke run: 256-image subsets, S = 1,4, 2 timed steps, fp32, subset data only")
    ap.add_argument("--cases", default=",".join(KINDS), help=f"model kinds, from {', '.join(KINDS)}")
    ap.add_argument("--seeds", default=None, help="seeds per trial S (default 1,16,64; --small 1,4)")
    ap.add_argument("--precisions", default=None, help="default: all of workers.device.PRECISIONS (CPU: fp32)")
    ap.add_argument("--data", default=None, help="subset,full (default both; --small: subset)")
    ap.add_argument("--subset", type=int, default=None, help="images in the device-resident subset (16384)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per case (default 20; --small 2)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3; --small 1)")
    ap.add_argument("--opt-reps", type=int, default=None, help="timed optimiser updates (default 10; --small 2)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's; --small on a CPU: 1, steadier on a shared machine)")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="start no new case after this many seconds (the rest is listed as not measured)")
    ap.add_argument("--json", default=None, help="write the results here (rewritten after each case)")
    ap.add_argument("--cuda-graphs", action="store_true",
                    help="also time each case's step replayed from its CUDA graph (train.cuda_graphs; a failed "
                    "capture can leave the device unusable for the rest of the run: give it a run of its own)")
    ap.add_argument("--figures", default=None, help="record each case's s/step here for `submit --dry-run` "
                    "(default $ORTHOSWEEP_CACHE/step_figures.json; none: do not record)")
    args = ap.parse_args(argv)
    small = args.small
    args.seeds = [int(s) for s in (args.seeds or ("1,4" if small else "1,16,64")).split(",")]
    args.data = (args.data or ("subset" if small else "subset,full")).split(",")
    args.subset = args.subset or (256 if small else 16384)
    args.steps = args.steps or (2 if small else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if small else 3)
    args.opt_reps = args.opt_reps or (2 if small else 10)
    args.cases = args.cases.split(",")
    for c in args.cases:
        if c not in KINDS:
            ap.error(f"--cases: unknown {c!r}; choose from {', '.join(KINDS)}")
    for d in args.data:
        if d not in ("subset", "full"):
            ap.error(f"--data: unknown {d!r}; choose from subset, full")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    on_cpu = device.type == "cpu"
    if args.threads or (args.small and on_cpu):
        torch.set_num_threads(args.threads or 1)
    wanted = (args.precisions.split(",") if args.precisions else list(PRECISIONS))
    if args.small and on_cpu:
        wanted = ["fp32"]
    skipped_prec = [p for p in wanted if p not in PRECISIONS or (on_cpu and p != "fp32")]
    precisions = [p for p in wanted if p not in skipped_prec]
    pythonpath = os.environ.get("PYTHONPATH")
    command = f"{'PYTHONPATH=' + pythonpath + ' ' if pythonpath else ''}python {shlex.join(sys.argv)}"
    args.command = command
    where = f"CUDA {torch.cuda.get_device_name(device)}" if not on_cpu else \
        f"CPU (torch threads: {torch.get_num_threads()})"
    print(describe())
    print(f"command: {command}")
    print(f"device: {where}; {PRECISION_NOTE}: {', '.join(PRECISIONS)}")
    if on_cpu:
        print("NO CUDA DEVICE: every figure below is a CPU figure (wall clock, restarts per CPU-hour of this "
              "machine), not a GPU figure")
    if skipped_prec:
        why = "autocast/TF32 are CUDA-only" if on_cpu else "not in workers.device.PRECISIONS"
        print(f"precisions not run: {', '.join(skipped_prec)} ({why})")
    result: dict[str, Any] = {"machine": describe(), "command": command, "device": where, "cpu_figures": on_cpu,
                              "precisions_available": list(PRECISIONS), "precision_note": PRECISION_NOTE,
                              "precisions_not_run": skipped_prec, "schedules": {}, "cases": [],
                              "not_measured": []}

    def save() -> None:
        result["modules"] = {m: m in sys.modules for m in ("ray", "duckdb", "pydantic")}
        result["wall_seconds"] = time.perf_counter() - started
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))

    bounds = device_bounds(device, precisions)
    result["bounds"] = bounds
    unit = "CPU" if on_cpu else "GPU"
    size = "2048^3" if on_cpu else "8192^3"
    print("bounds measured now: " + ", ".join(
        [f"{p} matmul {bounds[f'matmul_tflops_{p}']:.3g} TFLOP/s ({size})" for p in precisions
         if f"matmul_tflops_{p}" in bounds]
        + [f"copy {bounds['copy_gbs']:.0f} GB/s ({'memcpy 256 MiB' if on_cpu else 'device-to-device 1 GiB'}, "
           f"read+write)"]))
    save()

    datasets: dict[str, Any] = {}
    kinds: dict[str, tuple[Kind, int]] = {}
    for name in args.cases:  # the kinds and their paper schedules, printed once
        kind = kind_for(name)
        if kind.dataset not in datasets:
            datasets[kind.dataset] = load(kind.dataset)
        ds = datasets[kind.dataset]
        n_train = len(ds.split_indices("train"))
        restart_steps = kind.epochs * (n_train // kind.batch)
        src = (f"{kind.epochs} epochs x {n_train // kind.batch:,} steps ({n_train:,} training images = 80% of "
               f"{len(ds):,}, workers/data/base.py SPLIT_FRACTIONS; batch {kind.batch}) = {restart_steps:,} steps "
               f"per restart; epochs and batch from {kind.source}")
        result["schedules"][name] = {"epochs": kind.epochs, "steps_per_epoch": n_train // kind.batch,
                                     "restart_steps": restart_steps, "source": src}
        kinds[name] = (kind, restart_steps)
        print(f"\n{name}: {kind.model}, {kind.config['arch']['kind']}, {kind.config['optimizer']['name']} "
              f"{kind.config['optimizer']['lr']}, latent {kind.config['latent_dim']}, {kind.config['hparams']}\n"
              f"   paper restart: {src}")
    save()

    def over_time() -> bool:
        return bool(args.time_limit) and time.perf_counter() - started > args.time_limit

    cache_built: set[str] = set()
    header = (f"{'case':<19} {'data':<20} {'prec':<5} {'S':>3} {'s/step':>9} {'rest./' + unit + '-h':>11} "
              f"{'TFLOP/s':>8} {'%peak':>6} {'opt GB/s':>9} {'%copy':>6} {'ref s/step':>10} {'trn/ref':>7} "
              f"{'ref opt GB/s':>12} {'graph s/st':>10}")
    for data in args.data:  # all kinds on the subset first: under --time-limit the full split is what is cut
        print(f"\n== {data} training set"
              + (f" (first {args.subset:,} training images)" if data == "subset" else " (whole training split)"))
        print(header)
        for name, (kind, restart_steps) in kinds.items():
            ds = datasets[kind.dataset]
            max_train = args.subset if data == "subset" else None
            keep: dict[str, Any] = {}
            if data == "full" and kind.dataset not in cache_built and hasattr(ds, "build_cache") \
                    and not over_time():
                from workers.data.rendered import cache_mode
                if cache_mode() != "never":
                    t0 = time.perf_counter()
                    ds.build_cache()
                    print(f"   (node cache of {kind.dataset} ready in {time.perf_counter() - t0:.1f} s, outside "
                          f"the timing; a trial's steady state reads it)", flush=True)
                cache_built.add(kind.dataset)
            for precision in precisions:
                for S in args.seeds:
                    label = f"{data} {'' if max_train is None else max_train}".strip()
                    if over_time():
                        result["not_measured"].append({"case": name, "data": data, "precision": precision, "S": S,
                                                       "why": "time limit"})
                        print(f"{name:<19} {label:<20} {precision:<5} {S:>3}  not measured (--time-limit)")
                        continue
                    try:
                        r = run_case(kind, ds, S, precision, max_train, args, device, bounds, restart_steps, keep)
                    except Exception as e:  # noqa: BLE001 -- one failing case must not cost the session's others
                        why = failure(e)
                        result["not_measured"].append({"case": name, "data": data, "precision": precision, "S": S,
                                                       "why": why})
                        print(f"{name:<19} {label:<20} {precision:<5} {S:>3}  not measured ({why})", flush=True)
                        continue
                    result["cases"].append(r)
                    peak = "" if r["frac_of_matmul_peak"] is None else f"{100 * r['frac_of_matmul_peak']:.1f}"
                    print(f"{name:<19} {label + ' ' + r['data_mode']:<20} {precision:<5} {S:>3} "
                          f"{r['s_per_step']:>9.4g} {r['restarts_per_hour']:>11.3g} {r['tflops']:>8.3g} {peak:>6} "
                          f"{r['opt_gbs']:>9.3g} {100 * r['opt_frac_of_copy']:>6.1f} {r['ref_s_per_step']:>10.4g} "
                          f"{r['trainer_over_ref']:>6.2f}x {r['ref_opt_gbs']:>12.3g} "
                          f"{_graphed(r):>10}", flush=True)
                    if r["graphed_note"] and args.cuda_graphs and not on_cpu:
                        print(f"   CUDA graph: {r['graphed_note']}")
                    save()
    flags = sorted({(r["precision"], r["precision_flags"]) for r in result["cases"]})
    print("\nwhat each precision ran as: " + "; ".join(f"{p} = {f}" for p, f in flags))
    updates = sorted({(r["optimizer"], r["optimizer_update"]) for r in result["cases"]})
    print("the trainer's optimiser update (workers.models.optim): " + "; ".join(f"{o} = {u}" for o, u in updates))
    print("columns: s/step median of timed steps (trainer = workers.train.TrialRun.train_step incl. its batch "
          "gather); rest./h = S*3600/(s/step*steps per paper restart); TFLOP/s from layer shapes (3x forward, "
          "see step_flops_per_seed) and %peak of the same-precision matmul above; opt GB/s = (3+2n)*P*S*4 bytes / "
          "the optimiser update timed alone, %copy of the copy bandwidth above; ref = the plain step of this "
          "file (bmm, the trainer's conv form, foreach optimiser, no mask), trn/ref = trainer s/step / ref s/step; "
          "graph s/st = the trainer's step replayed from its CUDA graph (train.cuda_graphs; CUDA only); "
          "device/host/float32 = TrainData's mode (rows on the device, or gathered on the host per step)")
    if on_cpu:
        print("(all CPU figures: no CUDA device in this run)")
    save()
    mods = result["modules"]
    print(f"imported: ray {mods['ray']}, duckdb {mods['duckdb']}, pydantic {mods['pydantic']}; "
          f"{len(result['cases'])} cases in {result['wall_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
