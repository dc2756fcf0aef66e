"""Seed-batched parameters stored in one flat (S, P) tensor.

Every parameter of every seed lives in one buffer of shape (S, P): row s holds seed s's parameters,
laid out by a `ParamLayout` (name -> offset, shape). `FlatParams` exposes each parameter as a leaf
tensor (S, *shape) that is a *view* of that buffer, with one (S, P) gradient buffer beside it (filled
from `torch.autograd.grad`, one copy per parameter, where the optimiser needs it: the masked GPU path; the
fused CPU path reads autograd's gradients in place, see `workers.models.optim`). One buffer means: the optimiser is
a handful of elementwise ops on one tensor, gradients are zeroed in one op, a diverged seed is frozen by
masking one row, and a seed's state dict is one row sliced back into named tensors.

Initialisation draws each seed's parameters with that seed's own `torch.Generator`, in layout order, so a
seed's initial weights do not depend on which other seeds share its block.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class ParamEntry:
    name: str
    shape: tuple[int, ...]
    offset: int
    fan_in: int  # PyTorch's default init bound is 1/sqrt(fan_in) for weights and biases of a layer
    init: str = "uniform"  # "uniform" (U(-1/sqrt(fan_in), +1/sqrt(fan_in))), "zeros", "ones" or "minus_ones"

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass
class ParamLayout:
    """Ordered named parameter shapes of ONE seed; `size` = P, the row length of the flat buffer."""

    entries: dict[str, ParamEntry] = field(default_factory=dict)
    size: int = 0

    def add(self, name: str, shape: Iterable[int], fan_in: int, init: str = "uniform") -> None:
        if name in self.entries:
            raise ValueError(f"parameter {name!r} declared twice")
        shape = tuple(int(s) for s in shape)
        e = ParamEntry(name, shape, self.size, max(int(fan_in), 1), init)
        self.entries[name] = e
        self.size += e.size

    def view(self, flat: torch.Tensor, name: str) -> torch.Tensor:
        """(S, P) buffer -> (S, *shape) view of parameter `name` (shares storage and gradient)."""
        e = self.entries[name]
        return flat[:, e.offset:e.offset + e.size].unflatten(1, e.shape)

    def init_seed(self, generator: torch.Generator, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """One seed's parameter row (P,), drawn on the CPU from `generator` in layout order.

        PyTorch's default for Linear/Conv (kaiming_uniform with a=sqrt(5), which is U(±1/sqrt(fan_in)),
        and the same bound for biases). Drawn on the CPU so that a seed's weights are the same on any device.
        """
        row = torch.empty(self.size, dtype=dtype)
        for e in self.entries.values():
            chunk = row[e.offset:e.offset + e.size]
            if e.init == "zeros":
                chunk.zero_()
            elif e.init in ("ones", "minus_ones"):  # constants draw nothing from the generator
                chunk.fill_(1.0 if e.init == "ones" else -1.0)
            else:
                bound = 1.0 / math.sqrt(e.fan_in)
                chunk.uniform_(-bound, bound, generator=generator)
        return row

    def seed_state_dict(self, flat: torch.Tensor, seed_index: int, prefix: str = "") -> dict[str, torch.Tensor]:
        """Named CPU tensors of one seed (a plain dict of tensors: loadable with weights_only=True)."""
        row = flat[seed_index].detach().to("cpu", torch.float32)
        return {prefix + e.name: row[e.offset:e.offset + e.size].reshape(e.shape).clone()
                for e in self.entries.values()}

    def flat_from_state_dict(self, state: dict[str, torch.Tensor], prefix: str = "") -> torch.Tensor:
        """Inverse of `seed_state_dict`: a (1, P) buffer from named tensors (shapes checked)."""
        row = torch.empty(self.size, dtype=torch.float32)
        for e in self.entries.values():
            t = state[prefix + e.name]
            if tuple(t.shape) != e.shape:
                raise ValueError(f"parameter {prefix + e.name!r}: shape {tuple(t.shape)} in the state dict, "
                                 f"{e.shape} expected by this architecture")
            row[e.offset:e.offset + e.size] = t.reshape(-1)
        return row.unsqueeze(0)


def init_flat(layout: ParamLayout, generators: list[torch.Generator], device: torch.device) -> torch.Tensor:
    """(S, P) buffer on `device`, row s drawn from generators[s]."""
    rows = [layout.init_seed(g) for g in generators]
    return torch.stack(rows).to(device)


class FlatParams:
    """The parameters of S seeds: `data` and `grad` buffers (S, P) and named leaf views into `data`.

    `leaves[name]` (S, *shape) is what the networks compute with; it shares storage with `data` (an
    in-place update of `data` is an update of the model). `set_grads` writes the gradients autograd
    returns for the leaves into the matching views of `grad`, which the optimiser reads.
    """

    def __init__(self, layout: ParamLayout, data: torch.Tensor):
        if data.dim() != 2 or data.shape[1] != layout.size:
            raise ValueError(f"parameter buffer of shape {tuple(data.shape)}, expected (S, {layout.size})")
        self.layout = layout
        self.data = data.detach()
        self.grad = torch.zeros_like(self.data)
        self.leaves: dict[str, torch.Tensor] = {n: v.requires_grad_(True) for n, v in views(layout, self.data).items()}
        self.leaf_list = list(self.leaves.values())
        self._grad_views = list(views(layout, self.grad).values())

    def row_chunks(self, buf: torch.Tensor) -> list[list[torch.Tensor]]:
        """chunks[s][k]: the contiguous 1-D view of parameter k (`leaf_list` order) of seed s in an (S, P)
        buffer shaped like `data` (the unit a fused optimiser kernel can update in place)."""
        return [[buf[s, e.offset:e.offset + e.size] for e in self.layout.entries.values()]
                for s in range(buf.shape[0])]

    def rows_finite(self, grads: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """(S,) bool: seed s's gradients (autograd's, per leaf) are all finite.

        One read of each gradient: a non-finite entry makes its row's sum non-finite.
        """
        total = torch.zeros(self.data.shape[0], dtype=self.data.dtype, device=self.data.device)
        for g in grads:
            if g is not None:
                total += g.reshape(g.shape[0], -1).sum(1)
        return torch.isfinite(total)

    def set_grads(self, grads: Sequence[torch.Tensor | None]) -> None:
        """Copy autograd's gradients of `leaf_list` (in order; None = zero) into the `grad` buffer."""
        for view, g in zip(self._grad_views, grads, strict=True):
            if g is None:
                view.zero_()
            else:
                view.copy_(g)


def views(layout: ParamLayout, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """Named (S, *shape) views of an (S, P) buffer."""
    return {name: layout.view(flat, name) for name in layout.entries}
