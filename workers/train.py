"""The trainable: one Ray Tune trial = one configuration x a block of S seeds, trained as one batched model.

    run_trial(trial, study=..., study_uri=...)         Ray-free (tests, benches)
    tune_trainable({"trial": ..., "study": ..., "study_uri": ...})   the Tune function trainable

Both share `TrialRun`: it trains to each checkpoint epoch of the TrialSpec (epoch 0 = before training),
evaluates every seed on held-out data (losses + `workers.metrics`), writes one checkpoints row per seed
and the trace rows through the sink, saves each seed's state dict to `<study_uri>/models/<run_key>/e<e>.pt`
and hands a full training state (parameters, optimiser state, every generator, epoch, step, Δ_KL
history) to the caller, from which a later run resumes exactly.

Per step there is no host synchronisation: divergence is tracked on the device (`alive`), a seed whose
loss or gradient turns non-finite is frozen by the optimiser's mask and reported `diverged` at the next
checkpoint. The host syncs every `trace_every` steps (trace rows) and at checkpoints.

Trace rows reach the store while the trial trains: they are written at most every TRACE_FLUSH_SECONDS
(one file per trial per interval, which `orthosweep compact` merges) and at every checkpoint. With
`train.loggers: [tensorboard]` each trace row and checkpoint row also goes to TensorBoard event files
(`workers.curves`).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from workers.checkpoint import save_torch
from workers.curves import Curves
from workers.data import Dataset, GridDataset, load
from workers.data.device_rows import DeviceRows, compact_form, device_budget, device_rows, float32_form, resident
from workers.data.pairs import PairFeed, PairSampler
from workers.device import DevicePlan, apply_device_plan, autocast, plan_device
from workers.metrics.evaluate import METRIC_ERRORS, evaluate_checkpoint
from workers.metrics.inputs import metric_seed
from workers.metrics.polarized import polarized, polarized_fraction
from workers.models.objectives import OBJECTIVES, steps_eagerly
from workers.models.optim import SeedAdam, SeedOptimizer, make_optimizer
from workers.models.params import FlatParams, init_flat
from workers.models.vae import BatchedVAE, StepTerms
from workers.seed_streams import SeedStreams, seed_generator
from workers.step_graph import StepGraph
from workers.store.layout import model_uri
from workers.store.schema import METRIC_COLUMNS
from workers.store.write import write_rows
from workers.trial import RestartConfig, TrialSpec

STATE_VERSION = 1
STATE_FILE = "trial_state.pt"
CHUNK_STEPS = 256  # noise/shuffle draws per block of steps (restarts at every epoch)
DEVICE_DATA_BYTES = 512 * 2**20  # on a CPU: training sets whose compact rows take up to this live on the device
DEVICE_DATA_SHARE = 0.5  # on CUDA: the share of this process's allocatable device memory they may take
FACTORVAE_DISC = dict(lr=1e-4, betas=(0.5, 0.9))  # disentanglement_lib's discriminator optimiser
# trace rows recorded this long ago are written before the next checkpoint ($ORTHOSWEEP_TRACE_FLUSH_SECONDS)
TRACE_FLUSH_SECONDS = 15.0

ReportFn = Callable[[dict[str, Any], dict[str, Any]], None]


class TrainData:
    """The training points of a trial, gathered per step as (S, B, *obs) float32 on the device.

    Modes (`mode`), each giving the same observations bit for bit:

    - "device": the dataset's compact rows live on the device (`workers.data.device_rows`: dSprites
      bit-packed, Shapes3D uint8, the other sets float32 as they are), one copy per process; each step
      gathers its S*B rows there and decodes them to float32 there;
    - "host": the rows stay in the dataset's (node-shared, memory-mapped) storage and each step's S*B rows
      are gathered on the host through `observations_at` and copied over (sets that do not fit);
    - "float32": every observation decoded once and kept on the device as float32 (the former small-set
      path; what "device" is for sets whose compact form is float32).

    On CUDA (or with `compact=True`) the default is "device" when the compact bytes fit the budget, else
    "host". On a CPU the host's memory is the device's and the node cache's shared pages already are the
    compact form, so a private compact copy gains nothing: "float32" when the float32 bytes fit the budget
    (as the sets whose compact form is float32 always did), else "host". The budget is DEVICE_DATA_BYTES on
    a CPU; on CUDA DEVICE_DATA_SHARE of the memory this process can still allocate (the device's free
    memory, capped by the trial's GPU fraction of it), taken before the model is built.

    The bytes per dataset in each form are in docs/training_data.md.
    """

    MODES = ("device", "host", "float32")

    def __init__(self, dataset: Dataset, indices: np.ndarray, device: torch.device, *, gpu_fraction: float = 1.0,
                 budget: int | None = None, mode: str | None = None, compact: bool | None = None):
        self.dataset = dataset
        self.indices = indices
        self.device = device
        self.n = int(indices.size)
        form = compact_form(dataset)
        if mode is None:
            limit = (device_budget(device, gpu_fraction, DEVICE_DATA_BYTES, DEVICE_DATA_SHARE) if budget is None
                     else budget)
            if compact if compact is not None else device.type != "cpu":
                fits = resident(form, indices, device) is not None or form.nbytes(self.n) <= limit
                mode = "device" if fits else "host"
            else:
                mode = "float32" if float32_form(dataset).nbytes(self.n) <= limit else "host"
        if mode not in self.MODES:
            raise ValueError(f"TrainData mode {mode!r}: expected one of {', '.join(self.MODES)}")
        self.mode = mode
        self.rows: DeviceRows | None = None
        if mode == "device":
            self.rows = device_rows(form, indices, device)
        elif mode == "float32":
            self.rows = DeviceRows(float32_form(dataset), indices, device)
        self.on_device = self.rows is not None

    @property
    def device_bytes(self) -> int:
        """Bytes of the training set held on the device (0 in "host" mode)."""
        return 0 if self.rows is None else self.rows.nbytes

    def batch(self, positions: torch.Tensor) -> torch.Tensor:
        """positions (S, B) int64 in [0, n) -> observations (S, B, *obs) float32 on the device."""
        if self.rows is not None:
            return self.rows.gather(positions)
        rows = self.indices[positions.cpu().numpy().reshape(-1)]
        x = torch.from_numpy(self.dataset.observations_at(rows)).to(self.device, non_blocking=True)
        return x.view(*positions.shape, *self.dataset.observation_shape)


@dataclass
class TrialResult:
    """What a run leaves behind (for tests and benches): final state, rows written, timings."""

    state: dict[str, Any]
    epoch: int
    step: int
    alive: list[bool]
    checkpoint_rows: list[dict[str, Any]] = field(default_factory=list)
    trace_rows: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0


def train_data(dataset: Dataset, cfg: RestartConfig, plan: DevicePlan) -> TrainData:
    """The training split of a trial's configuration (its first `max_train` points when capped) on the
    plan's device, as its TrialRun holds it."""
    train_idx = dataset.split_indices("train")
    if cfg.max_train:
        train_idx = train_idx[: int(cfg.max_train)]
    return TrainData(dataset, train_idx, plan.device, gpu_fraction=plan.gpu_fraction)


def pair_feed(dataset: Dataset, cfg: RestartConfig, data: TrainData, plan: DevicePlan) -> PairFeed:
    """Paired models: the pair sampler of the configuration's objective and, on grid datasets, every stored
    point as the partners' store (on the device like the training rows when it fits, TrainData's rule)."""
    law = OBJECTIVES[cfg.model].pairs
    sampler = PairSampler(dataset, law.transition, dict(cfg.hparams), shuffled_negatives=law.shuffled_negatives)
    gather = None
    if isinstance(dataset, GridDataset):
        store = TrainData(dataset, np.arange(len(dataset), dtype=np.int64), plan.device,
                          gpu_fraction=plan.gpu_fraction)
        gather = store.batch
    return PairFeed(sampler, data.indices, plan.device, gather)


class TrialRun:
    """Training state and loop of one trial.

    step_graph: how steps run — None: as the trial asks (`TrialSpec.cuda_graphs`: captured in a CUDA graph
    when the trial is eligible, `graph_blocker`); "eager"; "cuda"; "emulate": the graph protocol without a
    graph (`workers.step_graph`; tests on a CPU).
    """

    def __init__(self, trial: TrialSpec, *, study: str, study_uri: str | None, plan: DevicePlan,
                 dataset: Dataset | None = None, step_graph: str | None = None):
        cfg = trial.config
        self.trial, self.cfg, self.study, self.study_uri, self.plan = trial, cfg, study, study_uri, plan
        self.device = plan.device
        self.dataset = dataset if dataset is not None else load(cfg.dataset, **cfg.dataset_options)
        self.data = train_data(self.dataset, cfg, plan)
        self.batch_size = min(cfg.batch_size, self.data.n)
        self.steps_per_epoch = self.data.n // self.batch_size
        self.vae = BatchedVAE(cfg, self.dataset.observation_shape)
        self.S = len(trial.seeds)
        self.streams = SeedStreams(trial.seeds, extra=("pair",) if self.vae.paired else ())
        self.pairs = pair_feed(self.dataset, cfg, self.data, plan) if self.vae.paired else None
        self.params = FlatParams(self.vae.layout, init_flat(self.vae.layout, self.streams.gens["init"],
                                                            self.device))
        mode = step_graph or ("cuda" if trial.cuda_graphs else "eager")
        if mode not in ("eager", "cuda", "emulate"):
            raise ValueError(f"step_graph: got {mode!r}; allowed: eager, cuda, emulate")
        # the emulated graph runs the optimiser path a capture needs (no host read of `alive`)
        opt_kw: dict[str, Any] = {"host_alive": False} if mode == "emulate" else {}
        self.opt: SeedOptimizer = make_optimizer(cfg.optimizer.name, self.params, cfg.optimizer.lr, **opt_kw)
        self.disc: FlatParams | None = None
        self.disc_opt: SeedOptimizer | None = None
        if self.vae.disc_layout is not None:
            self.disc = FlatParams(self.vae.disc_layout, init_flat(self.vae.disc_layout,
                                                                   self.streams.gens["disc_init"], self.device))
            self.disc_opt = SeedAdam(self.disc, FACTORVAE_DISC["lr"], betas=FACTORVAE_DISC["betas"], **opt_kw)
        self.alive = torch.ones(self.S, dtype=torch.bool, device=self.device)
        self.step_graph: StepGraph | None = None
        self.graph_note = ""  # why a trial that asked for CUDA graphs steps eagerly ("" otherwise)
        if mode != "eager":
            self.enable_step_graph(emulate=mode == "emulate")
        self.epoch = 0
        self.step = 0
        self.reported_epoch = -1  # last checkpoint epoch whose rows were written and reported
        self.delta_kl: list[list[float]] = [[] for _ in range(self.S)]
        self.wall_seconds = 0.0
        self.attempt = 0
        self.pending_trace: list[dict[str, Any]] = []
        self.flushed_trace: list[dict[str, Any]] = []  # written since the last checkpoint
        self.trace_flush_seconds = float(os.environ.get("ORTHOSWEEP_TRACE_FLUSH_SECONDS", TRACE_FLUSH_SECONDS))
        self._flushed_at = time.monotonic()
        self._rate_from: tuple[float, int] | None = None  # (time, step) of the last trace row
        self._curves: Any = None  # workers.curves.Curves once the first row is logged (train.loggers)
        self._resume_step: int | None = None  # a later attempt: the step it starts from (events after it purged)
        self.eval_x = self._eval_points()

    # ---- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: loadable with torch.load(weights_only=True)."""
        return {
            "version": STATE_VERSION, "trial_id": self.trial.trial_id, "run_keys": list(self.trial.run_keys),
            "epoch": self.epoch, "step": self.step, "reported_epoch": self.reported_epoch,
            "attempt": self.attempt, "wall_seconds": self.wall_seconds,
            "flat": self.params.data.cpu().clone(), "opt": _cpu(self.opt.state_dict()),
            "disc_flat": None if self.disc is None else self.disc.data.cpu().clone(),
            "disc_opt": None if self.disc_opt is None else _cpu(self.disc_opt.state_dict()),
            "alive": self.alive.cpu().clone(), "streams": self.streams.state(),
            "delta_kl": [list(map(float, h)) for h in self.delta_kl],
        }

    def load_state_dict(self, st: dict[str, Any]) -> None:
        if st.get("version") != STATE_VERSION or list(st["run_keys"]) != list(self.trial.run_keys):
            raise ValueError(f"trial state is for trial {st.get('trial_id')!r} (run keys {st.get('run_keys')}), "
                             f"not {self.trial.trial_id!r}; point resume_from to this trial's checkpoint")
        with torch.no_grad():
            self.params.data.copy_(st["flat"].to(self.device))
            if self.disc is not None:
                self.disc.data.copy_(st["disc_flat"].to(self.device))
        self.opt.load_state_dict(_to(st["opt"], self.device))
        if self.disc_opt is not None:
            self.disc_opt.load_state_dict(_to(st["disc_opt"], self.device))
        self.alive.copy_(st["alive"])  # in place: a captured step graph writes this very tensor
        self.streams.load_state(st["streams"])
        self.epoch, self.step, self.reported_epoch = int(st["epoch"]), int(st["step"]), int(st["reported_epoch"])
        self.delta_kl = [list(h) for h in st["delta_kl"]]
        self.wall_seconds = float(st["wall_seconds"])
        self.attempt = int(st["attempt"]) + 1

    # ---- training ------------------------------------------------------------------------------
    def train_epoch(self) -> None:
        """One pass of every seed over its own permutation of the training points."""
        B, d, steps = self.batch_size, self.vae.latent_dim, self.steps_per_epoch
        order_cpu = self.streams.epoch_order(self.data.n, steps, B)
        order = order_cpu.to(self.device)
        stochastic = self.vae.posterior != "none"
        for c0 in range(0, steps, CHUNK_STEPS):
            k = min(CHUNK_STEPS, steps - c0)
            if self.pairs is not None:  # paired models: partners of the first observations, noise for 2B
                eps = self.streams.noise(k, 2 * B, d).to(self.device) if stochastic else None
                chunk = self.pairs.chunk(order_cpu[:, c0:c0 + k], self.streams.gens["pair"])
                for t in range(k):
                    x2, shuffle = chunk.step(t)
                    self.train_step(self.data.batch(order[:, c0 + t]), None if eps is None else eps[:, t], None,
                                    x_pair=x2, pair_perm=shuffle)
                continue
            eps = self.streams.noise(k, B, d).to(self.device) if stochastic else None
            perm = self.streams.shuffles(k, B, d).to(self.device) if self.disc is not None else None
            for t in range(k):
                x = self.data.batch(order[:, c0 + t])
                self.train_step(x, None if eps is None else eps[:, t], None if perm is None else perm[:, t])
        self.epoch += 1

    def train_step(self, x: torch.Tensor, eps: torch.Tensor | None, perm: torch.Tensor | None, *,
                   x_pair: torch.Tensor | None = None, pair_perm: torch.Tensor | None = None) -> StepTerms:
        """One optimisation step of every live seed on its batch x (S, B, *obs), noise eps (S, B, d) and
        FactorVAE shuffles perm (S, B, d); replayed from the step graph when there is one."""
        self.opt.advance()
        if self.disc_opt is not None:
            self.disc_opt.advance()
        graph = self.step_graph
        if graph is not None:
            try:
                terms = graph(x, eps, perm)
            except RuntimeError as e:
                if graph.captured:  # a replay failed: no capture problem to step around
                    raise
                # a failed capture restored the state: this step and the rest run eagerly
                self._step_eagerly(f"capture failed ({type(e).__name__}: {str(e).splitlines()[0][:200]})")
                terms = self.device_step(x, eps, perm)
        else:
            terms = self.device_step(x, eps, perm, x_pair=x_pair, pair_perm=pair_perm)
        self.step += 1
        if self.trial.trace_every and self.step % self.trial.trace_every == 0:
            self._trace(terms)
        return terms

    def enable_step_graph(self, *, emulate: bool = False) -> bool:
        """From the next step on, replay steps from a graph captured at that step (`workers.step_graph`);
        False, with the reason in `graph_note` and a warning, when this trial cannot."""
        why = graph_blocker(self, emulate=emulate)
        if why:
            self._step_eagerly(why)
            return False
        self.step_graph = StepGraph(self.device_step, self._step_state(), self.device, emulate=emulate)
        return True

    def _step_eagerly(self, why: str) -> None:
        """No step graph from now on; `graph_note` and a warning say why."""
        self.step_graph, self.graph_note = None, why
        warnings.warn(f"trial {self.trial.trial_id}: train.cuda_graphs: stepping eagerly, {why}", RuntimeWarning,
                      stacklevel=3)

    def device_step(self, x: torch.Tensor, eps: torch.Tensor | None, perm: torch.Tensor | None, *,
                    x_pair: torch.Tensor | None = None, pair_perm: torch.Tensor | None = None) -> StepTerms:
        """The device work of a step (what a step graph captures): forward, gradients, the finiteness mask,
        the optimisers' update of the step their `advance` counted. Writes only `_step_state()`, in place;
        no host sync."""
        with autocast(self.plan, cache=self.step_graph is None):
            terms = self.vae.terms(self.params.leaves, x, eps, step=self.step, dataset_size=self.data.n,
                                   disc_params=None if self.disc is None else self.disc.leaves, perm=perm,
                                   x_pair=x_pair, pair_perm=pair_perm)
        total = terms.loss.sum()
        finite = torch.isfinite(terms.loss)
        if terms.disc_loss is not None:
            total = total + terms.disc_loss.sum()
            finite &= torch.isfinite(terms.disc_loss)
        groups = [self.params] if self.disc is None else [self.params, self.disc]
        leaves = [leaf for g in groups for leaf in g.leaf_list]
        grads = torch.autograd.grad(total, leaves, allow_unused=True)
        per_group = []
        for g in groups:
            per_group.append(grads[:len(g.leaf_list)])
            grads = grads[len(g.leaf_list):]
            finite &= g.rows_finite(per_group[-1])
        self.alive &= finite
        # the optimisers read autograd's gradients where they lie (no copy into a gradient buffer)
        self.opt.apply(self.alive, per_group[0])
        if self.disc_opt is not None:
            self.disc_opt.apply(self.alive, per_group[1])
        return terms

    def _step_state(self) -> list[torch.Tensor]:
        """Every tensor `device_step` writes: parameters, optimiser state, `alive`."""
        out = [self.params.data, *self.opt.state.values(), self.alive]
        if self.disc is not None and self.disc_opt is not None:
            out += [self.disc.data, *self.disc_opt.state.values()]
        return out

    def _trace(self, terms: StepTerms) -> None:
        """Trace rows of every live seed at this step (training batch): losses and the polarised regime."""
        loss, recon, kl = (t.detach().float().cpu().numpy() for t in (terms.loss, terms.recon, terms.kl))
        alive = self.alive.cpu().numpy()
        mu = terms.mu.float().cpu().numpy()
        post = {k: v.float().cpu().numpy() for k, v in terms.posterior.items()}
        now = time.perf_counter()
        rate = None
        if self._rate_from is not None and now > self._rate_from[0]:
            rate = (self.step - self._rate_from[1]) / (now - self._rate_from[0])
        self._rate_from = (now, self.step)
        rows = []
        for s in range(self.S):
            if not alive[s]:
                continue
            row = self._trace_base(s) | {"loss": float(loss[s]), "recon": float(recon[s]), "kl": float(kl[s]),
                                         "steps_per_second": rate}
            if self.vae.posterior != "none":
                p = polarized(mu[s], post["logvar"][s]) if "logvar" in post else \
                    polarized(mu[s], cov=_cov(post["scale_tril"][s]))
                row.update(kl_active=p["kl_active"], delta_kl=p["polarized_delta_kl"],
                           active_units=p["active_units"], kl_per_dim=p["kl_per_dim"])
                dk = p["polarized_delta_kl"]
                self.delta_kl[s].append(float("nan") if dk is None else float(dk))
            rows.append(row)
        self.pending_trace.extend(rows)
        if self.curves is not None:
            self.curves.trace(self.step, rows)
        if time.monotonic() - self._flushed_at >= self.trace_flush_seconds:
            self.flush_trace()

    @property
    def curves(self) -> Any:
        """The TensorBoard writer of `train.loggers` (workers.curves), opened on first use; None without."""
        if self._curves is None and "tensorboard" in self.trial.loggers and self.study_uri is not None:

            # False: tried and not available (the warning said why)
            self._curves = Curves.open(self.study_uri, self.trial, resume_step=self._resume_step) or False
        return self._curves or None

    def flush_trace(self) -> None:
        """Write the trace rows recorded since the last write to the store (and flush the event files)."""
        self._flushed_at = time.monotonic()
        if self.study_uri is not None and self.pending_trace:
            write_rows(self.study_uri, "trace", self.pending_trace)
            self.flushed_trace.extend(self.pending_trace)
            self.pending_trace = []
        if self._curves:
            self._curves.flush()

    def _trace_base(self, s: int) -> dict[str, Any]:
        ident = self.trial.restart_columns(self.study, s)
        return {k: ident[k] for k in ("study", "run_key", "config_key", "dataset", "model", "seed")} | {
            "step": self.step, "epoch": self.step / self.steps_per_epoch, "attempt": self.attempt}

    # ---- evaluation ------------------------------------------------------------------------------
    def _eval_points(self) -> torch.Tensor:
        idx = self.dataset.split_indices("test")[: self.trial.eval.n_eval]
        return torch.from_numpy(self.dataset.observations_at(idx)).to(self.device)

    @torch.no_grad()
    def heldout_losses(self) -> dict[str, np.ndarray]:
        """Per-seed loss, recon and KL per example on the held-out points (S,) each, under the trial's
        objective, in training-size batches (β-TCVAE's estimate depends on the batch), with noise from
        each seed's "eval" stream re-seeded at this epoch (training streams untouched)."""
        B, d, S = self.batch_size, self.vae.latent_dim, self.S
        n = (self.eval_x.shape[0] // B) * B
        if n == 0:
            B = n = self.eval_x.shape[0]
        gens = [seed_generator(seed, "eval", self.epoch) for seed in self.trial.seeds]
        sums = {k: torch.zeros(S, dtype=torch.float64, device=self.device) for k in ("loss", "recon", "kl")}
        for b0 in range(0, n, B):
            x = self.eval_x[b0:b0 + B].unsqueeze(0).expand(S, *self.eval_x[b0:b0 + B].shape)
            eps = torch.stack([torch.randn(B, d, generator=g) for g in gens]).to(self.device)
            perm = None
            if self.disc is not None:
                perm = torch.stack([torch.rand(B, d, generator=g).argsort(0) for g in gens]).to(self.device)
            with autocast(self.plan):
                t = self.vae.terms(self.params.leaves, x, eps, step=self.step, dataset_size=self.data.n,
                                   disc_params=None if self.disc is None else self.disc.leaves, perm=perm)
            for k in sums:
                sums[k] += getattr(t, k).double()
        nb = n // B
        return {k: (v / nb).cpu().numpy() for k, v in sums.items()}

    def evaluate(self) -> list[dict[str, Any]]:
        """One checkpoints row per seed at the current epoch; saves each seed's state dict."""
        losses = self.heldout_losses()
        alive = self.alive.cpu().numpy()
        rows = []
        for s in range(self.S):
            rk = self.trial.run_keys[s]
            status = "ok" if alive[s] else "diverged"
            row = self._checkpoint_base(s) | {"status": status}
            for k in ("loss", "recon", "kl"):
                v = float(losses[k][s])
                row[k] = v if math.isfinite(v) else None
            if status == "ok":
                t0 = time.perf_counter()
                try:
                    row.update(self._metrics(s))
                    row["evaluated"] = list(self.trial.eval.in_trial())
                except METRIC_ERRORS as e:  # undefined metric, not a bug
                    row.update(status="failed", error=f"metrics: {type(e).__name__}: {e}")
                row["metrics_seconds"] = time.perf_counter() - t0
            if self.delta_kl[s]:
                row["polarized_fraction"] = float(polarized_fraction(np.asarray(self.delta_kl[s])))
            if self.study_uri is not None:
                state = self.vae.seed_state_dict(self.params.data, s, None if self.disc is None else self.disc.data)
                save_torch(state, model_uri(self.study_uri, rk, self.epoch))
            rows.append(row)
        return rows

    def _metrics(self, s: int) -> dict[str, Any]:
        """Metric columns of seed s: the study's `eval.metrics` this trial computes (`EvalSettings.in_trial`)."""
        model = self.vae.seed_view(self.params.data, s)
        out = evaluate_checkpoint(model, self.dataset, metrics=self.trial.eval.in_trial(),
                                  eval_cfg=self.trial.eval.as_dict(), seed=metric_seed(self.trial.run_keys[s]),
                                  device=self.device)
        return {k: v for k, v in out.items() if k in METRIC_COLUMNS}

    def _checkpoint_base(self, s: int) -> dict[str, Any]:
        return self.trial.restart_columns(self.study, s) | {
            "epoch": self.epoch, "step": self.step, "wall_seconds": self.wall_seconds, "attempt": self.attempt}

    # ---- the loop --------------------------------------------------------------------------------
    def run(self, *, stop_after_epoch: int | None = None, on_checkpoint: ReportFn | None = None) -> TrialResult:
        """Train from the current epoch to the last checkpoint (or `stop_after_epoch`), evaluating,
        writing and reporting at every checkpoint epoch not yet done."""
        result = TrialResult(state={}, epoch=self.epoch, step=self.step, alive=[])
        self._resume_step = self.step if self.attempt else None
        epochs = self.cfg.epochs
        pending = sorted(c for c in self.trial.checkpoints if c > self.reported_epoch and c >= self.epoch)
        for target in pending:
            t0 = time.perf_counter()
            while self.epoch < target:
                self.train_epoch()
            t1 = time.perf_counter()
            rows = self.evaluate()
            t2 = time.perf_counter()
            result.train_seconds += t1 - t0
            result.eval_seconds += t2 - t1
            self.wall_seconds += t2 - t0
            for r in rows:
                r["wall_seconds"] = self.wall_seconds
            if self._rate_from is not None:  # the step rate counts training time only
                self._rate_from = (self._rate_from[0] + (t2 - t1), self._rate_from[1])
            trace = self.flushed_trace + self.pending_trace
            self.flush_trace()
            self.flushed_trace, self.pending_trace = [], []
            if self.study_uri is not None:
                write_rows(self.study_uri, "checkpoints", rows)
            if self.curves is not None:
                self.curves.checkpoint(self.step, self.epoch, rows)
            self.reported_epoch = self.epoch
            result.checkpoint_rows.extend(rows)
            result.trace_rows.extend(trace)
            n_diverged = sum(r["status"] == "diverged" for r in rows)
            if on_checkpoint is not None:
                live = [r["loss"] for r in rows if r["status"] == "ok" and r["loss"] is not None]
                on_checkpoint({"epoch": self.epoch, "step": self.step,
                               "restarts_done": self.S if self.epoch >= epochs else 0,
                               "diverged": n_diverged, "loss": float(np.mean(live)) if live else float("nan"),
                               "done": self.epoch >= epochs,
                               # restarts whose remaining metrics the evaluation stage computes (async)
                               "to_evaluate": [r["run_key"] for r in rows if r["status"] == "ok"],
                               # per seed, for Tune's logger callbacks (train.loggers mlflow, wandb)
                               "seeds": {f"seed_{r['seed']}": _reported(r) for r in rows}},
                              self.state_dict())
            if stop_after_epoch is not None and self.epoch >= stop_after_epoch:
                break
        if self._curves:
            self._curves.close()
        self._curves = None
        result.state = self.state_dict()
        result.epoch, result.step = self.epoch, self.step
        result.alive = self.alive.cpu().tolist()
        return result


def graph_blocker(run: TrialRun, *, emulate: bool = False) -> str | None:
    """Why the steps of `run` cannot be captured in a CUDA graph, or None when they can."""
    if run.device.type != "cuda" and not emulate:
        return f"CUDA graphs need a CUDA device (this trial runs on {run.device.type})"
    why = steps_eagerly(run.cfg.model)
    if why:
        return why
    for opt in (run.opt, run.disc_opt):
        if opt is None or opt.capturable:
            continue
        if not opt.fused:
            why = "" if opt.has_fused_kernel else \
                f"torch {torch.__version__} has no {opt.fused_op} kernel for {run.device.type}, and "
            return f"{why}the masked update the optimiser takes is not captured"
        return "the optimiser reads `alive` on the host on this device"
    return None


REPORTED = ("loss", "recon", "kl", "dto", "mig", "ds", "active_units")  # per seed in each Tune report


def _reported(row: dict[str, Any]) -> dict[str, float]:
    """The finite REPORTED values of a checkpoint row."""
    out = {}
    for k in REPORTED:
        v = row.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out[k] = float(v)
    return out


def _cov(scale_tril: np.ndarray) -> np.ndarray:
    return scale_tril @ np.swapaxes(scale_tril, -1, -2)


def _cpu(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v.detach().cpu().clone() if isinstance(v, torch.Tensor) else v for k, v in d.items()}


def _to(d: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in d.items()}


def load_state(path: str) -> dict[str, Any]:
    """A saved trial state from a file or a checkpoint directory holding STATE_FILE."""
    if os.path.isdir(path):
        path = os.path.join(path, STATE_FILE)
    return torch.load(path, weights_only=True, map_location="cpu")


def run_trial(trial: TrialSpec, *, study: str, study_uri: str | None, resume_from: str | dict[str, Any] | None = None,
              stop_after_epoch: int | None = None, on_checkpoint: ReportFn | None = None,
              checkpoint_dir: str | None = None, cpus: float | None = None, gpus: float | None = None,
              dataset: Dataset | None = None) -> TrialResult:
    """Train one trial without Ray. `study_uri=None` writes nothing (benches).

    resume_from: a trial state (dict), a state file or a directory holding `trial_state.pt`.
    checkpoint_dir: if given, the trial state is saved there (as `trial_state.pt`) at every checkpoint.
    """
    plan = plan_device(cpus=cpus, gpus=gpus, precision=trial.precision)
    apply_device_plan(plan)
    run = TrialRun(trial, study=study, study_uri=study_uri, plan=plan, dataset=dataset)
    if resume_from is not None:
        run.load_state_dict(resume_from if isinstance(resume_from, dict) else load_state(resume_from))

    def report(metrics: dict[str, Any], state: dict[str, Any]) -> None:
        if checkpoint_dir is not None:
            os.makedirs(checkpoint_dir, exist_ok=True)
            save_torch(state, os.path.join(checkpoint_dir, STATE_FILE))
        if on_checkpoint is not None:
            on_checkpoint(metrics, state)

    return run.run(stop_after_epoch=stop_after_epoch, on_checkpoint=report)


def tune_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: config = {"trial": TrialSpec.to_dict(), "study": name, "study_uri": uri}.

    Resumes from `ray.tune.get_checkpoint()` when Tune restores the trial; reports once per checkpoint
    epoch with a Tune checkpoint holding the full training state.
    """
    import ray.tune as tune

    trial = TrialSpec.from_dict(config["trial"])
    ctx = tune.get_context()
    resources = dict(ctx.get_trial_resources().required_resources)
    state = None
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            state = load_state(d)
    attempt_floor = _count_start(ctx.get_trial_dir())

    def report(metrics: dict[str, Any], st: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(st, os.path.join(tmp, STATE_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    plan = plan_device(cpus=resources.get("CPU"), gpus=resources.get("GPU", 0.0), precision=trial.precision)
    apply_device_plan(plan)
    run = TrialRun(trial, study=config["study"], study_uri=config["study_uri"], plan=plan)
    if state is not None:
        run.load_state_dict(state)
    run.attempt = max(run.attempt, attempt_floor)
    run.run(on_checkpoint=report)


def _count_start(trial_dir: str | None) -> int:
    """How many times this trial was started before (a marker file per start in the trial directory)."""
    if not trial_dir:
        return 0
    try:
        os.makedirs(trial_dir, exist_ok=True)
        marker = os.path.join(trial_dir, "orthosweep_starts")
        n = int(open(marker).read().strip() or 0) if os.path.exists(marker) else 0
        with open(marker, "w") as fh:
            fh.write(str(n + 1))
        return n
    except (OSError, ValueError):
        return 0
