"""Light metadata about every dataset: what the study spec validates against.

Importing this module must stay cheap (no torch, no data generation): the spec validator and the CLI
use it before anything is scheduled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OptionSpec:
    """One dataset option: its type, default and an allowed-value check described in words."""

    type: type
    default: Any
    check: str = ""  # "positive", "path", "" (any)
    required: bool = False


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_factors: int  # 0: no generative factors (factor metrics are null)
    kind: str  # "vector" (N, D) or "image" (N, C, H, W)
    observation_shape: tuple[int, ...]
    likelihood: str  # "gaussian" or "bernoulli": the paper's choice for this data
    options: dict[str, OptionSpec] = field(default_factory=dict)


DATASETS: dict[str, DatasetInfo] = {
    "synth_lin": DatasetInfo(
        "synth_lin", 2, "vector", (3,), "gaussian",
        {
            "ratio": OptionSpec(float, 2.0, "positive"),  # stretch of one factor (thesis: 2; Table 3.4: 1/1.2/1.5)
            "n": OptionSpec(int, 50_000, "positive"),
            "data_seed": OptionSpec(int, 0),
        },
    ),
    "synth_nonlin": DatasetInfo(
        "synth_nonlin", 2, "vector", (6,), "gaussian",
        {"n": OptionSpec(int, 50_000, "positive"), "data_seed": OptionSpec(int, 0)},
    ),
    "dsprites": DatasetInfo(
        "dsprites", 5, "image", (1, 64, 64), "bernoulli",
        {"path": OptionSpec(str, None, "path"), "data_seed": OptionSpec(int, 0)},  # data_seed: the 80/10/10 split
    ),
    "shapes3d": DatasetInfo(
        "shapes3d", 6, "image", (3, 64, 64), "bernoulli",
        {"path": OptionSpec(str, None, "path"), "data_seed": OptionSpec(int, 0)},
    ),
    "mnist": DatasetInfo(
        "mnist", 0, "image", (1, 28, 28), "bernoulli",
        {"path": OptionSpec(str, None, "path", required=True), "data_seed": OptionSpec(int, 0)},
    ),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", 0, "image", (1, 28, 28), "bernoulli",
        {"path": OptionSpec(str, None, "path", required=True), "data_seed": OptionSpec(int, 0)},
    ),
}
