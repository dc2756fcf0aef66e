"""The trial contract: a typed, frozen description of one Ray Tune trial, built by `sweep`, run by `workers`.

A trial trains a block of seeds of one configuration as one batched model. `RestartConfig` is everything
that defines a restart except its seed; its `to_dict()` is the canonical mapping whose stable hash is the
`config_key` (with the seed added: the `run_key`), and what the store keeps in the `config` column.
`TrialSpec.to_dict()` / `from_dict()` carry the contract through Ray's object store and Tune's state as
plain JSON.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from workers.metrics.registry import METRICS

KEY_LENGTH = 16  # hex characters of sha256: 64 bits, collision-free far beyond any study size


def stable_key(obj: Any) -> str:
    """Short stable hash of the canonical JSON of `obj` (sorted keys, no whitespace)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


@dataclass(frozen=True)
class Arch:
    """Encoder/decoder architecture: `kind` linear | mlp | conv; hidden widths and activations for mlp."""

    kind: str
    encoder: tuple[int, ...] = ()
    decoder: tuple[int, ...] = ()
    encoder_act: str = "none"
    decoder_act: str = "none"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "encoder": list(self.encoder), "decoder": list(self.decoder),
                "encoder_act": self.encoder_act, "decoder_act": self.decoder_act}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Arch:
        return Arch(d["kind"], tuple(d.get("encoder", ())), tuple(d.get("decoder", ())),
                    d.get("encoder_act", "none"), d.get("decoder_act", "none"))


@dataclass(frozen=True)
class Optimizer:
    name: str  # adam | adagrad
    lr: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "lr": self.lr}


@dataclass(frozen=True)
class RestartConfig:
    """Everything that defines a restart but its seed (what `config_key` hashes)."""

    dataset: str
    dataset_options: dict[str, Any]
    model: str
    hparams: dict[str, float]
    arch: Arch
    latent_dim: int
    likelihood: str  # gaussian | bernoulli
    optimizer: Optimizer
    epochs: int
    batch_size: int
    max_train: int | None = None  # only the first N training points (declared reduced variants)
    # the factor on the objective's regulariser (workers.models.objectives.base): the dataset's likelihood
    # scale for objectives that declare `scaled_regularizer`, else 1
    regularizer_scale: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """The canonical mapping (its key names and values are part of every stored run key). A scale of 1
        is left out, so the keys of configurations it does not change stay what they were before it existed."""
        d = {
            "dataset": self.dataset, "dataset_options": dict(self.dataset_options), "model": self.model,
            "hparams": dict(self.hparams), "arch": self.arch.to_dict(), "latent_dim": self.latent_dim,
            "likelihood": self.likelihood, "optimizer": self.optimizer.to_dict(), "epochs": self.epochs,
            "batch_size": self.batch_size, "max_train": self.max_train,
        }
        if self.regularizer_scale != 1.0:
            d["regularizer_scale"] = self.regularizer_scale
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> RestartConfig:
        return RestartConfig(
            dataset=d["dataset"], dataset_options=dict(d.get("dataset_options", {})), model=d["model"],
            hparams=dict(d.get("hparams", {})), arch=Arch.from_dict(d["arch"]), latent_dim=int(d["latent_dim"]),
            likelihood=d["likelihood"], optimizer=Optimizer(d["optimizer"]["name"], float(d["optimizer"]["lr"])),
            epochs=int(d["epochs"]), batch_size=int(d["batch_size"]), max_train=d.get("max_train"),
            regularizer_scale=float(d.get("regularizer_scale", 1.0)))

    @property
    def key(self) -> str:
        """The config_key."""
        return stable_key(self.to_dict())

    def run_key(self, seed: int) -> str:
        return stable_key({**self.to_dict(), "seed": seed})


@dataclass(frozen=True)
class EvalSettings:
    """What is measured at every checkpoint (names of `workers.metrics.registry.METRICS`) and on how many
    points (sweep.defaults.EVAL_DEFAULTS fills what a study leaves out)."""

    metrics: tuple[str, ...] = ()
    n_eval: int = 10_000  # held-out points for DtO, DS, MIG, the polarised regime
    n_train_supervised: int = 10_000  # DCI / SAP / FactorVAE / BetaVAE training points
    n_test_supervised: int = 5_000
    # inline: the trial computes every checkpoint metric before training on; async: the trial computes
    # the device-side ones (registry `Metric.device_side`) and the evaluation stage the rest, on Ray CPU
    # tasks, while training continues
    mode: str = "inline"

    def as_dict(self) -> dict[str, Any]:
        return {"metrics": list(self.metrics), "n_eval": self.n_eval, "n_train_supervised": self.n_train_supervised,
                "n_test_supervised": self.n_test_supervised, "mode": self.mode}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> EvalSettings:
        sizes = {k: int(d[k]) for k in ("n_eval", "n_train_supervised", "n_test_supervised") if d.get(k) is not None}
        return EvalSettings(tuple(d.get("metrics", ())), **sizes, mode=str(d.get("mode") or "inline"))

    def in_trial(self) -> tuple[str, ...]:
        """The metrics a trial computes at each checkpoint itself (see `mode`)."""

        return tuple(m for m in self.metrics if METRICS[m].scope == "checkpoint"
                     and (self.mode == "inline" or METRICS[m].device_side))


@dataclass(frozen=True)
class TrialSpec:
    """One Ray Tune trial: a block of seeds of one configuration, trained as one batched model."""

    trial_id: str
    config_key: str
    config: RestartConfig
    seeds: tuple[int, ...]
    run_keys: tuple[str, ...]
    checkpoints: tuple[int, ...]  # epochs with a metrics row; 0 = before training; always ends at epochs
    trace_every: int
    precision: str  # fp32 | tf32 | bf16 (workers.device.PRECISIONS; tf32 and bf16 act on CUDA only)
    eval: EvalSettings = field(default_factory=EvalSettings)
    cuda_graphs: bool = False  # capture the training step in a CUDA graph (workers.step_graph; CUDA only)
    loggers: tuple[str, ...] = ()  # train.loggers; the trial itself writes "tensorboard" (workers.curves)

    def __post_init__(self) -> None:
        if len(self.seeds) != len(self.run_keys):
            raise ValueError(f"trial {self.trial_id}: {len(self.seeds)} seeds but {len(self.run_keys)} run keys")

    @property
    def partition(self) -> tuple[str, str]:
        """The store partition (dataset, model) the trial's rows go to."""
        return self.config.dataset, self.config.model

    def without(self, done: set[str]) -> TrialSpec | None:
        """This trial with the restarts in `done` left out (None if none is left). A seed's result does not
        depend on the other seeds of its block, so a smaller block trains the same restarts."""
        keep = [i for i, rk in enumerate(self.run_keys) if rk not in done]
        if len(keep) == len(self.run_keys):
            return self
        if not keep:
            return None
        return replace(self, seeds=tuple(self.seeds[i] for i in keep), run_keys=tuple(self.run_keys[i] for i in keep))

    def restart_columns(self, study: str, index: int) -> dict[str, Any]:
        """The `checkpoints` columns that identify restart `index` of this trial (seed, keys, config)."""
        c = self.config
        return {
            "study": study, "run_key": self.run_keys[index], "config_key": self.config_key,
            "trial_id": self.trial_id, "dataset": c.dataset, "model": c.model, "arch": c.arch.kind,
            "latent_dim": c.latent_dim, "seed": self.seeds[index], "hparams": dict(c.hparams),
            "config": c.to_dict(), "beta": c.hparams.get("beta"), "epochs": c.epochs,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id, "config_key": self.config_key, "config": self.config.to_dict(),
            "seeds": list(self.seeds), "run_keys": list(self.run_keys), "checkpoints": list(self.checkpoints),
            "trace_every": self.trace_every, "precision": self.precision, "eval": self.eval.as_dict(),
            "cuda_graphs": self.cuda_graphs, "loggers": list(self.loggers),
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TrialSpec:
        return TrialSpec(
            trial_id=d["trial_id"], config_key=d["config_key"], config=RestartConfig.from_dict(d["config"]),
            seeds=tuple(int(s) for s in d["seeds"]), run_keys=tuple(d["run_keys"]),
            checkpoints=tuple(int(c) for c in d["checkpoints"]), trace_every=int(d["trace_every"]),
            precision=d["precision"], eval=EvalSettings.from_dict(d.get("eval", {})),
            cuda_graphs=bool(d.get("cuda_graphs", False)), loggers=tuple(d.get("loggers", ())))
