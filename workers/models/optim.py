"""Adam and Adagrad on a flat (S, P) seed-batched parameter buffer (`FlatParams`), with per-seed freezing.

Both are elementwise, so one optimiser over the batched buffer is S independent optimisers. `alive` (S,)
bool, kept on the device: a seed whose entry is False keeps its parameters and optimiser state exactly as
they are (this is how a diverged seed is frozen while the others continue). The update
formulas are torch.optim's defaults (Adam: bias-corrected, eps outside the square root; Adagrad: no decay,
zero initial accumulator, eps 1e-10), which the tests check against torch.optim on a single seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from workers.models.params import FlatParams


class SeedOptimizer:
    """Base: state tensors shaped like the buffer, a shared step counter (all live seeds step together).

    Two implementations of the same update: `fused` (torch's single-pass fused kernel; on the CPU, where
    reading `alive` costs no device sync) updates the live seeds' chunks only — one contiguous 1-D view per
    (seed, parameter) of the buffers, with the gradients autograd returned read in place when `step` is
    given them (no copy into `params.grad`: on the dSprites MLP that copy was 57 MB written and read again
    per step) — and `masked` (torch.where per seed; no host sync, used on GPUs; reads `params.grad`).
    Both are elementwise, so a seed's arithmetic never depends on its block.
    """

    state_names: tuple[str, ...] = ()

    def __init__(self, params: FlatParams, lr: float, *, fused: bool | None = None):
        self.params = params
        self.lr = float(lr)
        self.t = 0
        self.fused = params.data.device.type == "cpu" if fused is None else fused
        self.state = {n: torch.zeros_like(params.data) for n in self.state_names}
        # chunks[s][k]: views that stay valid (state is only ever written in place, also on load)
        self._chunks = [params.row_chunks(b) for b in (params.data, params.grad, *self.state.values())]
        self._zero_grads = [torch.zeros(e.size, dtype=params.data.dtype, device=params.data.device)
                            for e in params.layout.entries.values()]

    @torch.no_grad()
    def step(self, alive: torch.Tensor, grads: Sequence[torch.Tensor | None] | None = None) -> None:
        """Apply one update to the seeds with alive[s] True (others stay bitwise).

        The gradient is `grads` — autograd's, one (S, *shape) tensor per leaf of `params.leaf_list` in
        order, None = zero — or, when `grads` is None or on the masked path, the `params.grad` buffer
        (the caller filled it with `params.set_grads`).
        """
        self.t += 1
        if not self.fused:
            if grads is not None:
                self.params.set_grads(grads)
            keep = alive.view(-1, 1)
            self.params.data.sub_(torch.where(keep, self._masked_update(self.params.grad, keep), 0.0))
            return
        live = [s for s, ok in enumerate(alive.cpu().tolist()) if ok]
        if not live:
            return
        data, grad_buf, *state = self._chunks
        lists: list[list[torch.Tensor]] = [[] for _ in range(2 + len(state))]
        for s in live:
            if grads is None:
                g_s = grad_buf[s]
            else:
                g_s = [z if g is None else g[s].reshape(-1) for g, z in zip(grads, self._zero_grads, strict=True)]
            for out, chunk in zip(lists, (data[s], g_s, *(st[s] for st in state)), strict=True):
                out.extend(chunk)
        self._fused(*lists)

    def _fused(self, data: list[torch.Tensor], grad: list[torch.Tensor], *state: list[torch.Tensor]) -> None:
        """One fused update at step self.t of the listed chunks (contiguous, matching shapes)."""
        raise NotImplementedError

    def _masked_update(self, g: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Advance the state of the kept seeds in place (torch.where) and return the parameter decrement
        (whatever it is for frozen seeds: `step` masks it out)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t, **{n: v.detach().clone() for n, v in self.state.items()}}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.t = int(sd["t"])
        for n in self.state_names:
            self.state[n].copy_(sd[n])


class SeedAdam(SeedOptimizer):
    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, params: FlatParams, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, *, fused: bool | None = None):
        super().__init__(params, lr, fused=fused)
        self.betas = betas
        self.eps = eps

    def _fused(self, data: list[torch.Tensor], grad: list[torch.Tensor], *state: list[torch.Tensor]) -> None:
        m, v = state
        steps = [torch.tensor(float(self.t))] * len(data)
        torch._fused_adam_(data, grad, m, v, [], steps, lr=self.lr,
                           beta1=self.betas[0], beta2=self.betas[1], weight_decay=0.0, eps=self.eps,
                           amsgrad=False, maximize=False)

    def _masked_update(self, g: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b1, b2 = self.betas
        m, v = self.state["exp_avg"], self.state["exp_avg_sq"]
        torch.where(keep, m.lerp(g, 1 - b1), m, out=m)
        torch.where(keep, (v * b2).addcmul_(g, g, value=1 - b2), v, out=v)
        bias1 = 1 - b1 ** self.t
        bias2_sqrt = (1 - b2 ** self.t) ** 0.5
        denom = (v.sqrt() / bias2_sqrt).add_(self.eps)
        return (m / denom).mul_(self.lr / bias1)


class SeedAdagrad(SeedOptimizer):
    state_names = ("sum",)

    def __init__(self, params: FlatParams, lr: float, eps: float = 1e-10, *, fused: bool | None = None):
        super().__init__(params, lr, fused=fused)
        self.eps = eps

    def _fused(self, data: list[torch.Tensor], grad: list[torch.Tensor], *state: list[torch.Tensor]) -> None:
        steps = [torch.tensor(float(self.t))] * len(data)
        torch._fused_adagrad_(data, grad, state[0], steps, lr=self.lr,
                              lr_decay=0.0, weight_decay=0.0, eps=self.eps, maximize=False)

    def _masked_update(self, g: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        s = self.state["sum"]
        torch.where(keep, s.addcmul(g, g), s, out=s)
        return g / (s.sqrt() + self.eps) * self.lr


def make_optimizer(name: str, params: FlatParams, lr: float, **kwargs: Any) -> SeedOptimizer:
    """'adam' | 'adagrad' over the flat parameters of S seeds."""
    if name == "adam":
        return SeedAdam(params, lr, **kwargs)
    if name == "adagrad":
        return SeedAdagrad(params, lr, **kwargs)
    raise ValueError(f"optimizer.name: unknown optimiser {name!r}; allowed: adam, adagrad")
