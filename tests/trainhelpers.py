"""Shared builders for the trainer tests: TrialSpecs by hand and a tiny 64x64 image dataset."""

from __future__ import annotations

from typing import Any

import numpy as np

from workers.data import Dataset
from workers.trial import TrialSpec, stable_key

ARCHS = {
    "linear": {"kind": "linear", "encoder": [], "decoder": [], "encoder_act": "none", "decoder_act": "none"},
    "mlp": {"kind": "mlp", "encoder": [60, 40, 20], "decoder": [60, 40, 20], "encoder_act": "tanh",
            "decoder_act": "tanh"},
    "conv": {"kind": "conv", "encoder": [], "decoder": [], "encoder_act": "relu", "decoder_act": "relu"},
}


def make_trial(seeds: list[int], *, model: str = "beta_vae", dataset: str = "synth_lin", arch: str = "linear",
               hparams: dict[str, float] | None = None, epochs: int = 2, checkpoints: list[int] | None = None,
               n: int = 2000, batch_size: int = 64, latent_dim: int = 2, optimizer: str = "adam",
               lr: float = 1e-3, likelihood: str = "gaussian", trace_every: int = 10,
               metrics: list[str] | None = None, dataset_options: dict[str, Any] | None = None) -> TrialSpec:
    options = dataset_options if dataset_options is not None else {"n": n, "data_seed": 0}
    config = {
        "dataset": dataset, "dataset_options": options, "model": model,
        "hparams": hparams if hparams is not None else {"beta": 1e-3}, "arch": ARCHS[arch],
        "latent_dim": latent_dim, "likelihood": likelihood, "optimizer": {"name": optimizer, "lr": lr},
        "epochs": epochs, "batch_size": batch_size, "max_train": None,
    }
    ck = stable_key(config)
    return TrialSpec.from_dict(dict(
        trial_id=f"{ck[:10]}-0", config_key=ck, config=config, seeds=seeds,
        run_keys=[stable_key({**config, "seed": s}) for s in seeds],
        checkpoints=sorted(set(checkpoints if checkpoints is not None else [0, epochs])),
        trace_every=trace_every, precision="fp32",
        eval={"metrics": metrics if metrics is not None else ["polarized"], "n_eval": 200},
    ))


class TinyImages(Dataset):
    """200 random binary 64x64 images (C channels) with 2 discrete factors: a stand-in for conv tests."""

    name = "tiny_images"
    factor_names = ["a", "b"]
    factor_sizes: list[int | None] = [10, 20]

    def __init__(self, channels: int = 1):
        self.observation_shape = (channels, 64, 64)
        rng = np.random.default_rng(0)
        self._x = (rng.random((200, channels, 64, 64)) < 0.3).astype(np.float32)

    def __len__(self) -> int:
        return 200

    def factors_at(self, indices: np.ndarray) -> np.ndarray:
        idx = np.asarray(indices)
        return np.stack([idx // 20, idx % 20], axis=1)

    def observations_at(self, indices: np.ndarray) -> np.ndarray:
        return self._x[np.asarray(indices)]

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([rng.integers(0, 10, n), rng.integers(0, 20, n)], axis=1)

    def observations(self, factors: np.ndarray) -> np.ndarray:
        f = np.asarray(factors)
        return self.observations_at(f[:, 0] * 20 + f[:, 1])
