"""Adam and Adagrad on a flat (S, P) seed-batched parameter buffer (`FlatParams`), with per-seed freezing.

Both are elementwise, so one optimiser over the batched buffer is S independent optimisers. `alive` (S,)
bool, kept on the device: a seed whose entry is False keeps its parameters and optimiser state exactly as
they are (this is how a diverged seed is frozen while the others continue), also when its gradient holds
NaN or inf. The update formulas are torch.optim's defaults (Adam: bias-corrected, eps outside the square
root; Adagrad: no decay, zero initial accumulator, eps 1e-10), which the tests check against torch.optim on
a single seed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch

from workers.models.params import FlatParams, views


def fused_kernel_available(op: str, device_type: str) -> bool:
    """Whether this torch build registers the fused optimiser kernel `op` ("_fused_adam_", "_fused_adagrad_")
    for `device_type` ("cpu", "cuda", ...). CUDA builds older than the kernel (Adagrad's CUDA kernel is newer
    than its CPU one) answer False, and the optimiser takes the masked path instead of failing at its
    first step."""
    try:
        return bool(torch._C._dispatch_has_kernel_for_dispatch_key(f"aten::{op}", device_type.upper()))
    except (AttributeError, RuntimeError):
        return False


class SeedOptimizer:
    """Base: state tensors shaped like the buffer, a shared step counter (all live seeds step together).

    Two implementations of the same update, both elementwise (a seed's arithmetic never depends on its
    block):

    `fused` (torch's single-pass fused kernel: reads gradient, parameters and state once, writes parameters
    and state once), on one contiguous 1-D view per (seed, parameter) of the buffers, with the gradients
    autograd returned read in place when `step` is given them (no copy into `params.grad`: on the dSprites
    MLP that copy was 57 MB written and read again per step). How frozen seeds are skipped:
      - `host_alive` (the default on the CPU, where reading `alive` costs no device sync): one kernel call
        over the live seeds' chunks only;
      - otherwise (the default on CUDA): one kernel call per seed, with `found_inf` = "seed s is frozen" as a
        1-element tensor on the device — the kernel reads that flag itself and leaves the seed's
        parameters and state untouched (the mechanism torch's GradScaler uses), so there is no host sync.

    `masked` (`fused=False`, and the default where this torch build has no fused kernel for the device;
    any device, no host sync) — plain tensor ops over the whole (S, P) buffer with
    the mask folded into per-seed (S, 1) factors, see `_masked_update`. The gradient is copied into
    `params.grad` with a frozen seed's rows zeroed (the copy the update needs anyway), so no NaN/inf of a
    frozen seed reaches the arithmetic.
    """

    state_names: tuple[str, ...] = ()
    fused_op = ""  # the torch kernel `_fused` calls

    def __init__(self, params: FlatParams, lr: float, *, fused: bool | None = None,
                 host_alive: bool | None = None):
        self.params = params
        self.lr = float(lr)
        self.t = 0
        device = params.data.device
        self.has_fused_kernel = has_kernel = fused_kernel_available(self.fused_op, device.type)
        if fused and not has_kernel:
            raise ValueError(f"fused=True: this torch build ({torch.__version__}) has no {self.fused_op} kernel "
                             f"for {device.type}; pass fused=None (the masked path where it is missing)")
        self.fused = has_kernel if fused is None else fused
        if fused is None and not has_kernel and device.type != "cpu":
            warnings.warn(f"torch {torch.__version__} has no {self.fused_op} kernel for {device.type}: "
                          f"{type(self).__name__} takes the masked update (more memory passes per step, and "
                          f"no CUDA graph capture); a newer torch has the kernel", RuntimeWarning, stacklevel=2)
        self.host_alive = device.type == "cpu" if host_alive is None else host_alive
        self.state = {n: torch.zeros_like(params.data) for n in self.state_names}
        # chunks[s][k]: views that stay valid (state is only ever written in place, also on load)
        self._chunks = [params.row_chunks(b) for b in (params.data, params.grad, *self.state.values())]
        self._zero_grads = [torch.zeros(e.size, dtype=params.data.dtype, device=device)
                            for e in params.layout.entries.values()]
        self._grad_views = list(views(params.layout, params.grad).values())
        # the step count as the fused kernels read it: refilled in place off the CPU (a fill, not a copy from
        # the host, so no sync)
        self._step_t = torch.zeros((), dtype=torch.float32, device=device)
        self._zero = torch.zeros((), dtype=params.data.dtype, device=device)

    def step(self, alive: torch.Tensor, grads: Sequence[torch.Tensor | None] | None = None) -> None:
        """Apply one update to the seeds with alive[s] True (others stay bitwise): `advance`, then `apply`.

        The gradient is `grads` — autograd's, one (S, *shape) tensor per leaf of `params.leaf_list` in
        order, None = zero — or, when `grads` is None, the `params.grad` buffer (the caller filled it with
        `params.set_grads`; on the masked path a frozen seed's rows of it are zeroed).
        """
        self.advance()
        self.apply(alive, grads)

    def advance(self) -> None:
        """Count one more step: the host's counter, and off the CPU the device tensor the fused kernels read
        (a fill, not a copy from the host, so no sync). Kept apart from `apply` so that a step captured in a
        CUDA graph (`workers.step_graph`) reads the count of the step it replays, not the one it was captured at."""
        self.t += 1
        if self._step_t.device.type != "cpu":
            self._step_t.fill_(float(self.t))

    @property
    def capturable(self) -> bool:
        """Whether `apply` runs without host syncs or host-side step values (the fused per-seed path with a
        device-side frozen flag), as capture in a CUDA graph needs."""
        return self.fused and not self.host_alive

    @torch.no_grad()
    def apply(self, alive: torch.Tensor, grads: Sequence[torch.Tensor | None] | None = None) -> None:
        """The update of step `self.t` (see `step`), without counting it."""
        if not self.fused:
            keep = alive.view(-1, 1)
            self._masked_grad(keep, grads)
            self._masked_update(self.params.grad, keep)
            return
        rows = self._grad_rows(grads)
        if self.host_alive:
            live = [s for s, ok in enumerate(alive.cpu().tolist()) if ok]
            if live:
                self._fused(*self._lists(live, rows), steps=self._steps())
            return
        frozen = (~alive).to(torch.float32)
        steps = self._steps()
        for s in range(len(self._chunks[0])):
            self._fused(*self._lists([s], rows), steps=steps, found_inf=frozen[s:s + 1])

    @property
    def update_path(self) -> str:
        """How `apply` runs here: "fused" (one kernel over the live seeds, `alive` read on the host),
        "fused_found_inf" (one kernel per seed, the frozen flag read on the device) or "masked"."""
        if not self.fused:
            return "masked"
        return "fused" if self.host_alive else "fused_found_inf"

    def _steps(self) -> torch.Tensor:
        if self._step_t.device.type == "cpu":
            return torch.tensor(float(self.t))
        return self._step_t

    def _grad_rows(self, grads: Sequence[torch.Tensor | None] | None) -> list[Sequence[torch.Tensor]]:
        """Per seed, the 1-D gradient chunks in layout order: autograd's per-leaf gradients (None = zero) split
        into their S rows by one unbind per leaf (S index-and-reshape calls per leaf took most of the update's
        time for the small synthetic MLPs at S = 64), or the rows of the `params.grad` buffer."""
        if grads is None:
            return self._chunks[1]
        split = [None if g is None else g.reshape(g.shape[0], -1).unbind(0) for g in grads]
        return [[z if r is None else r[s] for r, z in zip(split, self._zero_grads, strict=True)]
                for s in range(len(self._chunks[0]))]

    def _lists(self, seeds: Sequence[int], rows: list[Sequence[torch.Tensor]]) -> list[list[torch.Tensor]]:
        """[data, grad, *state] chunk lists of `seeds` (matching contiguous 1-D tensors), as the fused kernels
        take; `rows` from `_grad_rows`."""
        data, _, *state = self._chunks
        lists: list[list[torch.Tensor]] = [[] for _ in range(2 + len(state))]
        for s in seeds:
            for out, chunk in zip(lists, (data[s], rows[s], *(st[s] for st in state)), strict=True):
                out.extend(chunk)
        return lists

    def _masked_grad(self, keep: torch.Tensor, grads: Sequence[torch.Tensor | None] | None) -> None:
        """`params.grad` := the gradient with the rows of frozen seeds set to +0 (NaN/inf there included).

        From autograd's per-leaf gradients this is the copy `set_grads` makes, with the mask applied on the
        way (same memory traffic); from an already filled buffer it is one in-place pass.
        """
        if grads is None:
            torch.where(keep, self.params.grad, self._zero, out=self.params.grad)
            return
        for view, g in zip(self._grad_views, grads, strict=True):
            if g is None:
                view.zero_()
            else:
                torch.where(keep.view(-1, *[1] * (g.dim() - 1)), g, self._zero, out=view)

    def _fused(self, data: list[torch.Tensor], grad: list[torch.Tensor], *state: list[torch.Tensor],
               steps: torch.Tensor, found_inf: torch.Tensor | None = None) -> None:
        """One fused update at step self.t of the listed chunks (contiguous, matching shapes); none at all
        when `found_inf` (a 1-element float tensor on the device) is 1."""
        raise NotImplementedError

    def _masked_update(self, g: torch.Tensor, keep: torch.Tensor) -> None:
        """Update parameters and state of the kept seeds in place, given `g` with frozen rows zeroed."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t, **{n: v.detach().clone() for n, v in self.state.items()}}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.t = int(sd["t"])
        for n in self.state_names:
            self.state[n].copy_(sd[n])


class SeedAdam(SeedOptimizer):
    state_names = ("exp_avg", "exp_avg_sq")
    fused_op = "_fused_adam_"

    def __init__(self, params: FlatParams, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, *, fused: bool | None = None, host_alive: bool | None = None):
        super().__init__(params, lr, fused=fused, host_alive=host_alive)
        self.betas = betas
        self.eps = eps

    def _fused(self, data: list[torch.Tensor], grad: list[torch.Tensor], *state: list[torch.Tensor],
               steps: torch.Tensor, found_inf: torch.Tensor | None = None) -> None:
        m, v = state
        torch._fused_adam_(data, grad, m, v, [], [steps] * len(data), lr=self.lr,
                           beta1=self.betas[0], beta2=self.betas[1], weight_decay=0.0, eps=self.eps,
                           amsgrad=False, maximize=False, found_inf=found_inf)

    def _masked_update(self, g: torch.Tensor, keep: torch.Tensor) -> None:
        """torch.optim's single-tensor Adam, op for op, with the mask in (S, 1) factors:

            m.lerp_(g, (1-b1)·keep)          frozen: weight 0, m + 0·(0 - m) = m
            v.mul_(b2 if keep else 1)         frozen: v·1 = v
            v.addcmul_(g, g, 1-b2)            frozen: g = +0, v + 0 = v
            denom = sqrt(v)/bc2 + (eps if keep else inf)
            p.addcdiv_(m, denom, -lr/bc1)     frozen: m/inf = ±0, p ∓ 0 = p

        A live seed's factors are exactly torch's scalars (b1, b2, eps as float32), so its update is
        torch.optim's arithmetic. A frozen seed's values are left unchanged; bitwise too, since adding ±0
        changes only a -0.0, which none of p, m, v ever holds (init draws no -0.0, and x + y rounds to -0.0
        only when both are -0.0).
        """
        b1, b2 = self.betas
        m, v = self.state["exp_avg"], self.state["exp_avg_sq"]
        m.lerp_(g, keep.to(g.dtype) * (1 - b1))
        v.mul_(torch.where(keep, b2, 1.0)).addcmul_(g, g, value=1 - b2)
        bias1 = 1 - b1 ** self.t
        bias2_sqrt = (1 - b2 ** self.t) ** 0.5
        denom = v.sqrt().div_(bias2_sqrt).add_(torch.where(keep, self.eps, float("inf")))
        self.params.data.addcdiv_(m, denom, value=-self.lr / bias1)


class SeedAdagrad(SeedOptimizer):
    state_names = ("sum",)
    fused_op = "_fused_adagrad_"

    def __init__(self, params: FlatParams, lr: float, eps: float = 1e-10, *, fused: bool | None = None,
                 host_alive: bool | None = None):
        super().__init__(params, lr, fused=fused, host_alive=host_alive)
        self.eps = eps

    def _fused(self, data: list[torch.Tensor], grad: list[torch.Tensor], *state: list[torch.Tensor],
               steps: torch.Tensor, found_inf: torch.Tensor | None = None) -> None:
        torch._fused_adagrad_(data, grad, state[0], [steps] * len(data), lr=self.lr,
                              lr_decay=0.0, weight_decay=0.0, eps=self.eps, maximize=False, found_inf=found_inf)

    def _masked_update(self, g: torch.Tensor, keep: torch.Tensor) -> None:
        """torch.optim's single-tensor Adagrad, op for op; the zeroed gradient is the whole mask:
        a frozen seed's sum + 0·0 = sum and p + (-lr)·(0/std) = p + (-0) = p, bitwise."""
        s = self.state["sum"]
        s.addcmul_(g, g, value=1)
        std = s.sqrt().add_(self.eps)
        self.params.data.addcdiv_(g, std, value=-self.lr)


def make_optimizer(name: str, params: FlatParams, lr: float, **kwargs: Any) -> SeedOptimizer:
    """'adam' | 'adagrad' over the flat parameters of S seeds."""
    if name == "adam":
        return SeedAdam(params, lr, **kwargs)
    if name == "adagrad":
        return SeedAdagrad(params, lr, **kwargs)
    raise ValueError(f"optimizer.name: unknown optimiser {name!r}; allowed: adam, adagrad")
