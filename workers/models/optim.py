"""Adam and Adagrad on a flat (S, P) seed-batched parameter buffer, with per-seed freezing.

Both are elementwise, so one optimiser over the batched buffer is S independent optimisers. `alive` (S,)
bool, kept on the device (no host sync): a seed whose entry is False keeps its parameters and optimiser
state exactly as they are (this is how a diverged seed is frozen while the others continue). The update
formulas are torch.optim's defaults (Adam: bias-corrected, eps outside the square root; Adagrad: no decay,
zero initial accumulator, eps 1e-10), which the tests check against torch.optim on a single seed.
"""

from __future__ import annotations

from typing import Any

import torch


class SeedOptimizer:
    """Base: state tensors shaped like the buffer, a shared step counter (all live seeds step together)."""

    state_names: tuple[str, ...] = ()

    def __init__(self, param: torch.Tensor, lr: float):
        self.param = param
        self.lr = float(lr)
        self.t = 0
        self.state = {n: torch.zeros_like(param) for n in self.state_names}

    @torch.no_grad()
    def step(self, alive: torch.Tensor) -> None:
        """Apply one update from `param.grad` to the seeds with alive[s] True."""
        assert self.param.grad is not None, "step() needs param.grad: call backward() first"
        keep = alive.view(-1, *([1] * (self.param.dim() - 1)))
        self.t += 1
        update = self._update(self.param.grad, keep)
        self.param.copy_(torch.where(keep, self.param - update, self.param))

    def _update(self, g: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Advance the state of the kept seeds (torch.where) and return the parameter decrement."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t, **{n: v.detach().clone() for n, v in self.state.items()}}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.t = int(sd["t"])
        for n in self.state_names:
            self.state[n].copy_(sd[n])


class SeedAdam(SeedOptimizer):
    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, param: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        super().__init__(param, lr)
        self.betas = betas
        self.eps = eps

    def _update(self, g: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b1, b2 = self.betas
        m = torch.where(keep, self.state["exp_avg"].lerp(g, 1 - b1), self.state["exp_avg"])
        v = torch.where(keep, self.state["exp_avg_sq"] * b2 + (1 - b2) * g * g, self.state["exp_avg_sq"])
        self.state["exp_avg"], self.state["exp_avg_sq"] = m, v
        bias1 = 1 - b1 ** self.t
        bias2_sqrt = (1 - b2 ** self.t) ** 0.5
        denom = (v.sqrt() / bias2_sqrt).add_(self.eps)
        return (m / denom).mul_(self.lr / bias1)


class SeedAdagrad(SeedOptimizer):
    state_names = ("sum",)

    def __init__(self, param: torch.Tensor, lr: float, eps: float = 1e-10):
        super().__init__(param, lr)
        self.eps = eps

    def _update(self, g: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        s = torch.where(keep, self.state["sum"] + g * g, self.state["sum"])
        self.state["sum"] = s
        return g / (s.sqrt() + self.eps) * self.lr


def make_optimizer(name: str, param: torch.Tensor, lr: float, **kwargs: Any) -> SeedOptimizer:
    """'adam' | 'adagrad' over the flat buffer `param` (a leaf tensor with requires_grad)."""
    if name == "adam":
        return SeedAdam(param, lr, **kwargs)
    if name == "adagrad":
        return SeedAdagrad(param, lr, **kwargs)
    raise ValueError(f"optimizer.name: unknown optimiser {name!r}; allowed: adam, adagrad")
