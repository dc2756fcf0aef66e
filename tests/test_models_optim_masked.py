"""The masked optimiser path (`fused=False`: no host sync, no full-buffer torch.where) on the CPU.

Live seeds get torch.optim's single-tensor Adam / Adagrad update (measured bitwise on x86 CPUs; asserted
to rtol 1e-6), frozen seeds keep parameters and state bit for bit although their gradients hold NaN and
inf, and the masked path agrees with both fused paths (host-read `alive`, per-seed `found_inf`).
"""

from __future__ import annotations

import pytest
import torch

from workers.models.optim import SeedAdagrad, SeedAdam
from workers.models.params import FlatParams, ParamLayout

S, STEPS = 4, 12
FROZEN = 1  # frozen from step FREEZE_AT on, with a NaN/inf gradient from then on
FREEZE_AT = 4
OPTS = {
    "adam": (SeedAdam, lambda p: torch.optim.Adam([p], lr=1e-2, foreach=False)),
    "adagrad": (SeedAdagrad, lambda p: torch.optim.Adagrad([p], lr=1e-2, foreach=False)),
}


def layout() -> ParamLayout:
    lay = ParamLayout()
    lay.add("w", (5, 3), fan_in=5)
    lay.add("b", (3,), fan_in=5)
    lay.add("unused", (2,), fan_in=1)
    return lay


def gradients(step: int) -> list[torch.Tensor | None]:
    """Autograd-shaped per-leaf gradients; the frozen seed's are poisoned once it is frozen."""
    gen = torch.Generator().manual_seed(100 + step)
    grads: list[torch.Tensor | None] = [torch.randn(S, 5, 3, generator=gen), torch.randn(S, 3, generator=gen), None]
    if step >= FREEZE_AT:
        grads[0][FROZEN, 0, 0] = float("nan")
        grads[0][FROZEN, 1, 2] = float("inf")
        grads[1][FROZEN, :] = float("-inf")
    return grads


def alive_at(step: int) -> torch.Tensor:
    alive = torch.ones(S, dtype=torch.bool)
    alive[FROZEN] = step < FREEZE_AT
    return alive


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)


def train(cls, *, via_buffer: bool = False, **kw) -> tuple[FlatParams, object, dict]:
    """STEPS steps; returns the params, the optimiser and a snapshot of the frozen seed at freezing time."""
    fp = FlatParams(layout(), torch.randn(S, layout().size, generator=torch.Generator().manual_seed(7)))
    opt = cls(fp, 1e-2, **kw)
    snap: dict = {}
    for step in range(STEPS):
        if step == FREEZE_AT:
            snap = {"p": fp.data[FROZEN].clone(), **{k: v[FROZEN].clone() for k, v in opt.state.items()}}
        grads = gradients(step)
        if via_buffer:
            fp.set_grads(grads)
            opt.step(alive_at(step))
        else:
            opt.step(alive_at(step), grads)
    return fp, opt, snap


@pytest.mark.parametrize("via_buffer", [False, True], ids=["grads", "buffer"])
@pytest.mark.parametrize("name", sorted(OPTS))
def test_masked_live_seeds_equal_torch_optim(name, via_buffer) -> None:
    cls, ref = OPTS[name]
    fp, _, _ = train(cls, fused=False, via_buffer=via_buffer)
    start = torch.randn(S, layout().size, generator=torch.Generator().manual_seed(7))
    for s in range(S):
        if s == FROZEN:
            continue
        p = start[s].clone().requires_grad_(True)
        opt = ref(p)
        for step in range(STEPS):
            g = gradients(step)
            p.grad = torch.cat([g[0][s].reshape(-1), g[1][s], torch.zeros(2)])
            opt.step()
        torch.testing.assert_close(fp.data[s], p.detach(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("via_buffer", [False, True], ids=["grads", "buffer"])
@pytest.mark.parametrize("fused,host_alive", [(False, None), (True, True), (True, False)],
                         ids=["masked", "fused-host", "fused-found_inf"])
@pytest.mark.parametrize("name", sorted(OPTS))
def test_frozen_seed_keeps_parameters_and_state_bitwise_despite_nan_and_inf(name, fused, host_alive,
                                                                           via_buffer) -> None:
    fp, opt, snap = train(OPTS[name][0], fused=fused, host_alive=host_alive, via_buffer=via_buffer)
    assert torch.equal(bits(fp.data[FROZEN]), bits(snap["p"]))
    for k, v in opt.state.items():
        assert torch.equal(bits(v[FROZEN]), bits(snap[k])), k
        assert torch.isfinite(v).all(), k
    assert torch.isfinite(fp.data).all()
    start = torch.randn(S, layout().size, generator=torch.Generator().manual_seed(7))
    live = [s for s in range(S) if s != FROZEN]
    assert (fp.data[live] != start[live]).any(1).all()  # every live seed trained on


@pytest.mark.parametrize("name", sorted(OPTS))
def test_masked_equals_the_fused_cpu_paths_on_live_seeds(name) -> None:
    cls = OPTS[name][0]
    masked, m_opt, _ = train(cls, fused=False)
    host, h_opt, _ = train(cls, fused=True, host_alive=True)
    per_seed, d_opt, _ = train(cls, fused=True, host_alive=False)
    # the two fused paths run the same kernel on the same chunks: bitwise
    assert torch.equal(host.data, per_seed.data)
    for k in h_opt.state:
        assert torch.equal(h_opt.state[k], d_opt.state[k])
    # the fused kernel's arithmetic differs from the op-by-op one by float32 rounding
    torch.testing.assert_close(masked.data, host.data, rtol=1e-5, atol=1e-6)
    for k in m_opt.state:
        torch.testing.assert_close(m_opt.state[k], h_opt.state[k], rtol=1e-5, atol=1e-7)


def test_masked_path_never_syncs_on_alive() -> None:
    """The masked and per-seed fused paths never read `alive` on the host (here: a tensor whose .cpu()/
    .tolist() would raise)."""

    class NoHost(torch.Tensor):
        def cpu(self, *a, **k):  # noqa: ARG002
            raise AssertionError("alive read on the host")

        def tolist(self):
            raise AssertionError("alive read on the host")

    for fused, host_alive in ((False, None), (True, False)):
        fp = FlatParams(layout(), torch.zeros(S, layout().size))
        opt = SeedAdam(fp, 1e-2, fused=fused, host_alive=host_alive)
        alive = torch.ones(S, dtype=torch.bool).as_subclass(NoHost)
        opt.step(alive, gradients(0))
        assert torch.isfinite(fp.data).all()
