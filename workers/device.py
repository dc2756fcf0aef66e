"""Where a trial computes: CUDA when present (Ray's GPU assignment respected), CPU otherwise.

Ray sets CUDA_VISIBLE_DEVICES for a trial that asked for GPUs, so "cuda" (= the first visible device) is
the assigned one. A fractional GPU share caps this process's memory on that device. Parameters, optimiser
state and gradients are float32 throughout; `precision` (PRECISIONS) only chooses how CUDA computes:

  fp32  float32 matmuls and convolutions (TF32 explicitly off).
  tf32  float32 tensors, but CUDA matmuls and cuDNN convolutions round their inputs to TF32 (10-bit
        mantissa, float32 range) on tensor cores: several times the fp32 matmul throughput on Ampere and
        later. Reproducibility trade-off: results differ from fp32 at about 1e-3 relative (so a tf32 run is
        not bitwise comparable with an fp32 run, and a seed's trajectory can drift from its fp32 one over
        many steps), but a run stays deterministic on the same device and software (resume is exact).
  bf16  autocast of the forward pass to bfloat16 (TF32 off for what stays float32).

On a CPU tf32 and bf16 are no-ops: the plan is fp32 (`plan_device`), the arithmetic float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

PRECISIONS = ("fp32", "tf32", "bf16")


@dataclass(frozen=True)
class DevicePlan:
    device: torch.device
    threads: int
    gpu_fraction: float  # 0 on CPU; the trial's GPU share (1.0 = a whole GPU)
    bf16: bool  # autocast to bfloat16 (CUDA only)
    tf32: bool = False  # TF32 matmuls / cuDNN convolutions (CUDA only)


def plan_device(*, cpus: float | None = None, gpus: float | None = None, precision: str = "fp32",
                prefer_cuda: bool = True) -> DevicePlan:
    """Pick the device and thread count for a trial with `cpus` CPUs and a `gpus` GPU share.

    `gpus=None` means "whatever is visible" (outside Ray); `gpus=0` forces the CPU. `precision` is one of
    PRECISIONS; on the CPU it plans fp32 whatever is asked.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: got {precision!r}; allowed: {', '.join(PRECISIONS)}")
    use_cuda = prefer_cuda and torch.cuda.is_available() and (gpus is None or gpus > 0)
    threads = max(1, int(cpus)) if cpus else torch.get_num_threads()
    if use_cuda:
        frac = 1.0 if gpus is None else min(float(gpus), 1.0)
        return DevicePlan(torch.device("cuda", 0), threads, frac, bf16=precision == "bf16",
                          tf32=precision == "tf32")
    return DevicePlan(torch.device("cpu"), threads, 0.0, bf16=False, tf32=False)


def apply_device_plan(plan: DevicePlan) -> None:
    """Set torch's thread count and, on CUDA, this process's memory share (fractional GPU) and TF32.

    TF32 is set explicitly either way (on when `plan.tf32`, off otherwise), because Ray may reuse this
    process for a trial of another precision. On a CPU plan nothing but the thread count is touched (TF32
    is a CUDA setting; CPU arithmetic stays fp32).
    """
    torch.set_num_threads(plan.threads)
    if plan.device.type != "cuda":
        return
    if 0 < plan.gpu_fraction < 1:
        torch.cuda.set_per_process_memory_fraction(plan.gpu_fraction, plan.device)
    torch.backends.cuda.matmul.allow_tf32 = plan.tf32
    torch.backends.cudnn.allow_tf32 = plan.tf32


@contextlib.contextmanager
def autocast(plan: DevicePlan, *, cache: bool = True) -> Iterator[None]:
    """bf16 autocast around a forward pass when the plan asks for it; otherwise nothing. `cache=False` for a
    pass captured in a CUDA graph (autocast's cast cache must not outlive the capture)."""
    if plan.bf16:
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=cache):
            yield
    else:
        yield
