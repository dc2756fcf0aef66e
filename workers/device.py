"""Where a trial computes: CUDA when present (Ray's GPU assignment respected), CPU otherwise.

Ray sets CUDA_VISIBLE_DEVICES for a trial that asked for GPUs, so "cuda" (= the first visible device) is
the assigned one. A fractional GPU share caps this process's memory on that device. Float32 throughout;
`precision: bf16` turns on autocast on CUDA only (on a CPU it is a no-op, stated in the trial's log).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DevicePlan:
    device: torch.device
    threads: int
    gpu_fraction: float  # 0 on CPU; the trial's GPU share (1.0 = a whole GPU)
    bf16: bool  # autocast to bfloat16 (CUDA only)


def plan_device(*, cpus: float | None = None, gpus: float | None = None, precision: str = "fp32",
                prefer_cuda: bool = True) -> DevicePlan:
    """Pick the device and thread count for a trial with `cpus` CPUs and a `gpus` GPU share.

    `gpus=None` means "whatever is visible" (outside Ray); `gpus=0` forces the CPU.
    """
    use_cuda = prefer_cuda and torch.cuda.is_available() and (gpus is None or gpus > 0)
    threads = max(1, int(cpus)) if cpus else torch.get_num_threads()
    if use_cuda:
        frac = 1.0 if gpus is None else min(float(gpus), 1.0)
        return DevicePlan(torch.device("cuda", 0), threads, frac, precision == "bf16")
    return DevicePlan(torch.device("cpu"), threads, 0.0, False)


def apply_device_plan(plan: DevicePlan) -> None:
    """Set torch's thread count and, for a fractional GPU, this process's memory share."""
    torch.set_num_threads(plan.threads)
    if plan.device.type == "cuda" and 0 < plan.gpu_fraction < 1:
        torch.cuda.set_per_process_memory_fraction(plan.gpu_fraction, plan.device)


@contextlib.contextmanager
def autocast(plan: DevicePlan) -> Iterator[None]:
    """bf16 autocast around a forward pass when the plan asks for it; otherwise nothing."""
    if plan.bf16:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield
