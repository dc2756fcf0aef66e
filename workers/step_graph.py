"""A trial's training step captured once in a CUDA graph and replayed every step (`train.cuda_graphs`).

At S = 1 and small S the step is launch-bound: the dSprites MLP step launches ~150 kernels, and the GPU
was measured busy 1.7 of its 2.6 ms. A CUDA graph records the step's kernels once and replays them with
one launch.

What is captured is the device part of `workers.train.TrialRun.train_step` (`TrialRun.device_step`):
forward, autograd's gradients, the finiteness mask and the optimisers' `apply`, reading the batch, the
noise and the FactorVAE shuffles from static input buffers that every replay first refills (device
copies). What stays on the host: the step counters (`SeedOptimizer.advance` writes the device step count
the fused kernels read before each replay), the trace condition and the epoch loop.

Capture needs a few eager warm-up passes on a side stream first (lazy initialisation of cuBLAS, cuDNN
and autograd must not be captured). Those passes change the parameters, so `StepGraph` saves every
tensor the step writes (`state`) before them and restores it after: warm-up leaves no trace, and every
training step of a graphed run, from its first, is a replay of the same graph. Hence resume is exact
(a resumed run captures the same graph and replays it from the restored state), and a seed frozen by a
non-finite loss stays frozen exactly as on the eager path (the mask is part of the captured step). A
graph's arithmetic is that of the eager kernels it recorded, which need not be bitwise the eager run's;
tests/test_cuda_paths.py holds it to the block-independence tolerance (not yet run on a GPU). The saved
copy takes the state's size in device memory once, during capture (7.3 GB for 64 seeds of the dSprites MLP
with Adagrad); a capture that runs out of memory falls back to eager steps like any failed capture.

`emulate=True` runs the same protocol without a graph (warm-up, restore, then the step function on the
static buffers each step): on a CPU this checks that every input goes through the static buffers and
that `state` holds everything the step writes, which is what a real capture depends on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

WARMUP_PASSES = 3  # eager passes before capture (torch's CUDA-graph notes use 3 for whole-network capture)

StepFn = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor | None], Any]


class StepGraph:
    """Capture `fn(x, eps, perm)` at its first call, replay it at every call after.

    fn: the device step; it must write only tensors listed in `state` (in place) and return its outputs
    (read after each replay: they are the graph's static outputs). state: every tensor fn writes.
    """

    def __init__(self, fn: StepFn, state: Sequence[torch.Tensor], device: torch.device, *, emulate: bool = False,
                 warmup: int = WARMUP_PASSES):
        if not emulate and device.type != "cuda":
            raise ValueError(f"a CUDA graph needs a CUDA device, not {device}")
        self.fn, self.state, self.device, self.emulate, self.warmup = fn, list(state), device, emulate, warmup
        self.graph: Any = None
        self.inputs: tuple[torch.Tensor | None, ...] | None = None
        self.out: Any = None
        self.replays = 0

    @property
    def captured(self) -> bool:
        return self.inputs is not None

    def __call__(self, x: torch.Tensor, eps: torch.Tensor | None, perm: torch.Tensor | None) -> Any:
        """One step on these inputs: the outputs of fn (the graph's static outputs: read them before the
        next call). Raises what capture raised; the state is restored first, so the caller can go on
        eagerly from the same point."""
        if self.inputs is None:
            self._capture(x, eps, perm)
        else:
            for buf, new in zip(self.inputs, (x, eps, perm), strict=True):
                if buf is not None:
                    buf.copy_(new)
        if self.emulate:
            self.out = self.fn(*self.inputs)
        else:
            self.graph.replay()
        self.replays += 1
        return self.out

    def _capture(self, x: torch.Tensor, eps: torch.Tensor | None, perm: torch.Tensor | None) -> None:
        inputs = tuple(None if t is None else t.detach().clone() for t in (x, eps, perm))
        saved = [t.detach().clone() for t in self.state]
        try:
            if self.emulate:
                for _ in range(self.warmup):
                    self.fn(*inputs)
            else:
                current = torch.cuda.current_stream(self.device)
                side = torch.cuda.Stream(self.device)
                side.wait_stream(current)
                with torch.cuda.stream(side):
                    for _ in range(self.warmup):
                        self.fn(*inputs)
                current.wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                # thread_local: CUDA calls of other threads (a Ray worker's) must not break this capture
                with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                    self.out = self.fn(*inputs)
                self.graph = graph
        finally:
            self._restore(saved)  # undo the warm-up passes (capture records kernels, it runs none)
        self.inputs = inputs

    def _restore(self, saved: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for t, s in zip(self.state, saved, strict=True):
                t.copy_(s)
