"""Tiny study files on synth_lin for the tests and benches, and the stub trainable's reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

STUB = "testing.stub_trainable:tune_trainable"


def write_study(path: Path, *, name: str, storage: str, seeds: Any = 4, per_trial: int = 2, epochs: int = 2,
                models: tuple[str, ...] = ("ae", "beta_vae"), resources: dict[str, Any] | None = None,
                n: int = 256) -> Path:
    """A tiny synth_lin study (n points, default 256) with checkpoints at every epoch."""
    spec = {
        "study": name, "storage": storage,
        "grid": {"dataset": ["synth_lin"], "model": list(models), "seeds": seeds},
        "overrides": {"synth_lin": {"n": n}},
        "train": {"epochs": epochs, "checkpoints": list(range(epochs + 1)), "seeds_per_trial": per_trial,
                  "batch_size": 64},
        "eval": {"metrics": ["dto", "mig"], "n_eval": 64},
        "resources": {"cpu": 1, "max_failures": 1, **(resources or {})},
    }
    path.write_text(yaml.safe_dump(spec))
    return path
