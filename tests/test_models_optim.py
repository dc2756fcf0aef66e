"""The flat-buffer optimisers equal torch.optim per seed, and freeze masked seeds exactly."""

from __future__ import annotations

import pytest
import torch

from workers.models.optim import SeedAdagrad, SeedAdam, fused_kernel_available, make_optimizer
from workers.models.params import FlatParams, ParamLayout


def flat_params(data: torch.Tensor) -> FlatParams:
    layout = ParamLayout()
    layout.add("w", (data.shape[1],), fan_in=1)
    return FlatParams(layout, data.clone())


def _grads(steps: int, shape: tuple[int, ...]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(*shape, generator=g) for _ in range(steps)]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "masked"])
@pytest.mark.parametrize("name,ref", [
    ("adam", lambda p: torch.optim.Adam([p], lr=1e-2)),
    ("adagrad", lambda p: torch.optim.Adagrad([p], lr=1e-2)),
])
def test_matches_torch_optim_on_each_seed(name, ref, fused) -> None:
    S, P, steps = 3, 11, 25
    start = torch.randn(S, P, generator=torch.Generator().manual_seed(1))
    fp = flat_params(start)
    opt = make_optimizer(name, fp, 1e-2, fused=fused)
    refs = [start[s].clone().requires_grad_(True) for s in range(S)]
    ref_opts = [ref(p) for p in refs]
    alive = torch.ones(S, dtype=torch.bool)
    for g in _grads(steps, (S, P)):
        fp.grad.copy_(g)
        opt.step(alive)
        for s in range(S):
            refs[s].grad = g[s].clone()
            ref_opts[s].step()
    for s in range(S):
        torch.testing.assert_close(fp.data[s], refs[s].detach(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "masked"])
@pytest.mark.parametrize("cls", [SeedAdam, SeedAdagrad])
def test_a_frozen_seed_keeps_parameters_and_state_while_others_move(cls, fused) -> None:
    fp = flat_params(torch.randn(3, 5))
    opt = cls(fp, 1e-2, fused=fused)
    alive = torch.ones(3, dtype=torch.bool)
    fp.grad.fill_(1.0)
    opt.step(alive)
    before_p = fp.data.clone()
    before_state = {k: v.clone() for k, v in opt.state.items()}
    alive[1] = False
    g = torch.ones(3, 5)
    g[1] = float("nan")  # a diverged seed's gradient
    fp.grad.copy_(g)
    opt.step(alive)
    assert torch.equal(fp.data[1], before_p[1])
    for k, v in opt.state.items():
        assert torch.equal(v[1], before_state[k][1]) and torch.isfinite(v).all()
    assert not torch.equal(fp.data[0], before_p[0]) and torch.isfinite(fp.data).all()
    # the live seeds got exactly the update they get in a block where nobody diverged
    ref = flat_params(before_p[[0, 2]])
    ref_opt = cls(ref, 1e-2, fused=fused)
    ref_opt.t = opt.t - 1
    for k in ref_opt.state:
        ref_opt.state[k].copy_(before_state[k][[0, 2]])
    ref.grad.fill_(1.0)
    ref_opt.step(torch.ones(2, dtype=torch.bool))
    assert torch.equal(ref.data, fp.data[[0, 2]])


def test_state_dict_round_trip_continues_identically() -> None:
    fp = flat_params(torch.randn(2, 4))
    opt = SeedAdam(fp, 1e-3)
    alive = torch.ones(2, dtype=torch.bool)
    grads = _grads(6, (2, 4))
    for g in grads[:3]:
        fp.grad.copy_(g)
        opt.step(alive)
    saved_p, saved = fp.data.clone(), opt.state_dict()
    for g in grads[3:]:
        fp.grad.copy_(g)
        opt.step(alive)
    fp2 = flat_params(saved_p)
    opt2 = SeedAdam(fp2, 1e-3)
    opt2.load_state_dict(saved)
    for g in grads[3:]:
        fp2.grad.copy_(g)
        opt2.step(alive)
    assert torch.equal(fp2.data, fp.data)


def test_unknown_optimizer_is_named() -> None:
    with pytest.raises(ValueError, match="unknown optimiser 'sgd'"):
        make_optimizer("sgd", flat_params(torch.zeros(1, 1)), 0.1)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "masked"])
@pytest.mark.parametrize("cls", [SeedAdam, SeedAdagrad])
def test_gradients_given_per_leaf_equal_the_same_gradients_in_the_buffer(cls, fused) -> None:
    """`step(alive, grads)` with autograd-shaped per-leaf gradients (one unused = None = zero, one seed
    frozen with a NaN gradient) makes exactly the update of the buffer path."""
    layout = ParamLayout()
    layout.add("w", (4, 3), fan_in=4)
    layout.add("b", (3,), fan_in=4)
    layout.add("unused", (2,), fan_in=1)
    start = torch.randn(3, layout.size, generator=torch.Generator().manual_seed(2))
    by_list, by_buffer = FlatParams(layout, start.clone()), FlatParams(layout, start.clone())
    opt_list, opt_buffer = cls(by_list, 1e-2, fused=fused), cls(by_buffer, 1e-2, fused=fused)
    alive = torch.tensor([True, False, True])
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        grads = [torch.randn(3, 4, 3, generator=gen), torch.randn(3, 3, generator=gen), None]
        grads[0][1, 0, 0] = float("nan")
        opt_list.step(alive, grads)
        by_buffer.set_grads(grads)
        opt_buffer.step(alive)
    assert torch.equal(by_list.data, by_buffer.data)
    assert torch.equal(by_list.data[1], start[1])
    for k in opt_list.state:
        assert torch.equal(opt_list.state[k], opt_buffer.state[k])


def test_rows_finite_flags_exactly_the_seeds_with_a_non_finite_gradient() -> None:
    layout = ParamLayout()
    layout.add("w", (2, 2), fan_in=2)
    layout.add("b", (2,), fan_in=2)
    fp = FlatParams(layout, torch.zeros(3, layout.size))
    grads = [torch.ones(3, 2, 2), torch.ones(3, 2)]
    grads[0][0, 1, 1] = float("inf")
    grads[1][2, 0] = float("nan")
    assert fp.rows_finite(grads).tolist() == [False, True, False]
    assert fp.rows_finite([None, torch.ones(3, 2)]).tolist() == [True, True, True]


def test_the_kernel_probe_finds_the_cpu_kernels_and_no_unknown_op() -> None:
    assert fused_kernel_available("_fused_adam_", "cpu") and fused_kernel_available("_fused_adagrad_", "cpu")
    assert not fused_kernel_available("_fused_no_such_optimiser_", "cpu")


@pytest.mark.parametrize("cls", [SeedAdam, SeedAdagrad])
def test_without_a_fused_kernel_the_default_is_the_masked_update_and_fused_true_is_refused(cls, monkeypatch) -> None:
    # a torch build without the device's kernel (CUDA builds before Adagrad's CUDA kernel)
    monkeypatch.setattr("workers.models.optim.fused_kernel_available", lambda op, device_type: False)
    start = torch.randn(2, 6, generator=torch.Generator().manual_seed(4))
    default, masked = flat_params(start), flat_params(start)
    opts = cls(default, 1e-2), cls(masked, 1e-2, fused=False)
    assert not opts[0].fused
    alive = torch.tensor([True, False])
    for g in _grads(4, (2, 6)):
        for fp, opt in zip((default, masked), opts, strict=True):
            fp.grad.copy_(g)
            opt.step(alive)
    assert torch.equal(default.data, masked.data) and torch.equal(default.data[1], start[1])
    with pytest.raises(ValueError, match=f"fused=True: .* no {cls.fused_op} kernel for cpu"):
        cls(flat_params(start), 1e-2, fused=True)
