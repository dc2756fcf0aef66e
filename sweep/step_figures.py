"""Seconds per training step measured by `bench/gpu_throughput.py`, kept on the node for `submit --dry-run`.

The bench times a trial's real step for many steps (default 20 after 3 warm-ups, each synchronised), on the
whole device, and records every case in `$ORTHOSWEEP_CACHE/step_figures.json`: one entry per cost key (the
newest measurement replaces an older one). `submit --dry-run`'s estimate then uses the entry of a cost class
in place of its own short calibration, and says so, when the key matches exactly:

    device       "cuda: <device name>" or "cpu: <n> threads" (the device the calibration runs on)
    dataset, n_train, model, arch (every field), latent_dim, batch, optimizer, S (seeds per trial), precision
    conv_form    conv nets only: the form of their convolutions (workers.models.networks.CONV_FORMS)
    cuda_graphs  only when the steps are replayed from a CUDA graph (train.cuda_graphs)

Anything else (another GPU model, another width, a capped training set) is not the same cost, and the
estimate keeps its calibration. The file is plain JSON so that it can be copied to a node of the same kind.

`submit --dry-run` records what its own calibration measured in the same file (command "orthosweep submit
--dry-run"), in its own parts, each under its own key so that a later dry-run reuses it instead of measuring
again: the model step of each step shape (`model_step_key`: the tensors, not the dataset's name), the step's
data of each dataset (`feed_key`) and one seed's checkpoint evaluation (`eval_key`; "extrapolated" when it was
timed on a subsample of the evaluation's points).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from workers.models.objectives import OBJECTIVES

FILE_NAME = "step_figures.json"


def default_path() -> Path:
    """`$ORTHOSWEEP_CACHE/step_figures.json` (default ~/.cache/orthosweep)."""
    return Path(os.environ.get("ORTHOSWEEP_CACHE") or Path.home() / ".cache" / "orthosweep").expanduser() / FILE_NAME


def device_label(device: Any, threads: int) -> str:
    """How a figure names the device it was measured on: a CUDA device by its name, a CPU by its threads."""
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {threads} threads"


def cost_key(run: Any) -> str:
    """The cost key of a built trial (`workers.train.TrialRun`): what decides its seconds per step."""
    return trial_cost_key(run.trial, run.plan, int(run.data.n), conv_form=run.vae.decoder.conv_form,
                          graphed=getattr(run, "step_graph", None) is not None)


def trial_cost_key(trial: Any, plan: Any, n_train: int, *, conv_form: str | None = None,
                   graphed: bool = False) -> str:
    """The cost key of a trial (`workers.trial.TrialSpec`) on a device plan with `n_train` training points,
    without building it: what `cost_key` of its TrialRun would be (`graphed`: steps replayed from a CUDA graph,
    train.cuda_graphs; `conv_form`: a conv net's form when not the device's default)."""
    cfg = trial.config
    precision = "bf16" if plan.bf16 else "tf32" if plan.tf32 else "fp32"
    key = {"device": device_label(plan.device, plan.threads), "dataset": cfg.dataset, "n_train": int(n_train),
           "model": cfg.model, "arch": dataclasses.asdict(cfg.arch), "latent_dim": int(cfg.latent_dim),
           "batch": int(min(cfg.batch_size, n_train)), "optimizer": cfg.optimizer.name, "S": len(trial.seeds),
           "precision": precision}
    if graphed:
        key["cuda_graphs"] = True
    if cfg.arch.kind == "conv":  # the conv forms differ in cost (workers.models.networks.CONV_FORMS)
        from workers.models.networks import conv_form_for

        key["conv_form"] = conv_form or conv_form_for(plan.device)
    return json.dumps(key, sort_keys=True)


def model_step_key(trial: Any, plan: Any, observation_shape: tuple[int, ...], n_train: int, *,
                   conv_form: str | None = None) -> str:
    """The key of a trial's model step on a batch already on the device (forward, gradients, update), what the
    dry-run times once per step shape: the tensors it runs decide it, not the dataset's name or the objective's
    hyperparameters. `trial_cost_key`'s fields (its batch: the configuration's, at most `n_train`) with the
    observation shape and likelihood for the dataset and the objective's step shape (workers.models.objectives)
    for its name."""
    key = json.loads(trial_cost_key(trial, plan, n_train, conv_form=conv_form))
    cfg = trial.config
    del key["dataset"], key["n_train"], key["model"]
    key.update({"what": "model step", "observation_shape": list(observation_shape), "likelihood": cfg.likelihood,
                "step_shape": OBJECTIVES[cfg.model].step_shape})
    return json.dumps(key, sort_keys=True)


def feed_key(trial: Any, plan: Any, n_train: int) -> str:
    """The key of a step's data (the batch of every seed gathered on the device, and a paired objective's
    partners): device, dataset and its options, training-set size, batch, seeds per trial, pair law."""
    cfg = trial.config
    law = OBJECTIVES[cfg.model].pairs
    return json.dumps({"what": "step data", "device": device_label(plan.device, plan.threads),
                       "dataset": cfg.dataset, "dataset_options": cfg.dataset_options, "n_train": int(n_train),
                       "batch": int(min(cfg.batch_size, n_train)), "S": len(trial.seeds),
                       "pairs": None if law is None else dataclasses.asdict(law)}, sort_keys=True, default=str)


def eval_key(trial: Any, plan: Any) -> str:
    """The key of one seed's checkpoint evaluation cost: device, dataset and its options, network, latent size,
    the objective's posterior (what the evaluation runs: encoder, decoder and posterior; a discriminator or a
    pair law is training's) and the evaluation settings (metrics, sizes)."""
    cfg = trial.config
    return json.dumps({"what": "eval", "device": device_label(plan.device, plan.threads), "dataset": cfg.dataset,
                       "dataset_options": cfg.dataset_options, "posterior": OBJECTIVES[cfg.model].posterior,
                       "arch": dataclasses.asdict(cfg.arch), "latent_dim": int(cfg.latent_dim),
                       "eval": dataclasses.asdict(trial.eval)}, sort_keys=True, default=str)


def load(path: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """cost key -> figure ({"s_per_step", "steps", "measured_at", "command"}; an `eval_key` -> {"s_per_eval",
    "measured_at", "command"}); {} without a file."""
    p = Path(path) if path is not None else default_path()
    if not p.is_file():
        return {}
    try:
        doc = json.loads(p.read_text())
        return {str(k): dict(v) for k, v in doc["figures"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"step figures {str(p)!r} are not a file written by bench/gpu_throughput.py ({e}); "
                         "remove it or give --step-figures another file") from None


def record(key: str, s_per_step: float, steps: int, command: str,
           path: str | os.PathLike[str] | None = None) -> None:
    """Add (or replace) the figure of one cost key; the file is rewritten atomically."""
    record_figure(key, {"s_per_step": float(s_per_step), "steps": int(steps)}, command, path)


def record_figure(key: str, figure: dict[str, Any], command: str, path: str | os.PathLike[str] | None = None) -> None:
    """Add (or replace) one figure (`record`; an evaluation's {"s_per_eval"}) with when and by what."""
    p = Path(path) if path is not None else default_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    figures = load(p)
    figures[key] = {**figure, "command": command,
                    "measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"figures": figures}, indent=1, sort_keys=True))
    os.replace(tmp, p)
