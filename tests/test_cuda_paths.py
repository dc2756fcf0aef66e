"""The device paths of training, on every device present: CPU always, CUDA when there is one.

Each test takes `device` from ["cpu"] + (["cuda"] if available), so CI runs the same code on the CPU and a
GPU machine adds the CUDA case (the tests marked `cuda_only` are skipped without CUDA). No Ray.

Block independence on CUDA is a tolerance, not bitwise: cuBLAS/cuDNN pick kernels, tile sizes and
reduction orders by problem shape, and a block of 4 seeds is another batched shape than a block of 1, so a
seed's float32 sums are rounded in another order (ulp-level differences that Adam's normalised steps carry
on). Measured on the CPU (below: asserted) the linear β-VAE is bitwise, losses and checkpoint metrics; on CUDA
the asserted bounds are rtol 1e-3 on the per-step losses of 25 steps and, at the checkpoint after them,
rtol 1e-2 on KL and DtO and atol 0.02 on MIG. The CUDA bounds have not yet been run on a GPU.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest
import torch
from trainhelpers import make_trial

from workers.device import PRECISIONS, DevicePlan, apply_device_plan, plan_device
from workers.models.optim import SeedAdagrad, SeedAdam
from workers.models.params import FlatParams, ParamLayout
from workers.train import TrialRun, run_trial

HAS_CUDA = torch.cuda.is_available()
DEVICES = ["cpu"] + (["cuda"] if HAS_CUDA else [])
cuda_only = pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")


def gpus(device: str) -> float:
    return 1.0 if device == "cuda" else 0.0


def test_the_modules_these_tests_use_import_no_ray() -> None:
    code = ("import sys, workers.device, workers.models.optim, workers.train; "
            "sys.exit(1 if 'ray' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---- optimiser: NaN isolation on the device ------------------------------------------------------------------
@pytest.mark.parametrize("fused", [None, False], ids=["default", "masked"])
@pytest.mark.parametrize("cls", [SeedAdam, SeedAdagrad])
@pytest.mark.parametrize("device", DEVICES)
def test_a_nan_seed_is_frozen_while_the_others_stay_finite_and_train(device, cls, fused) -> None:
    lay = ParamLayout()
    lay.add("w", (64, 32), fan_in=64)
    lay.add("b", (32,), fan_in=64)
    S = 4
    start = torch.randn(S, lay.size, generator=torch.Generator().manual_seed(0)).to(device)
    fp = FlatParams(lay, start.clone())
    opt = cls(fp, 1e-2, fused=fused)
    alive = torch.ones(S, dtype=torch.bool, device=device)
    gen = torch.Generator().manual_seed(1)
    frozen_p = frozen_state = None
    for step in range(10):
        grads = [torch.randn(S, 64, 32, generator=gen).to(device), torch.randn(S, 32, generator=gen).to(device)]
        if step >= 3:
            grads[0][2, 5, 5] = float("nan")
            grads[1][2, 0] = float("inf")
        alive &= fp.rows_finite(grads)  # as the trainer does: on the device, no sync
        if step == 3:
            frozen_p, frozen_state = fp.data[2].clone(), {k: v[2].clone() for k, v in opt.state.items()}
        opt.step(alive, grads)
    assert alive.cpu().tolist() == [True, True, False, True]
    assert torch.equal(fp.data[2], frozen_p)
    for k, v in opt.state.items():
        assert torch.equal(v[2], frozen_state[k]) and torch.isfinite(v).all(), k
    assert torch.isfinite(fp.data).all()
    assert (fp.data[[0, 1, 3]] != start[[0, 1, 3]]).any(1).all()


@cuda_only
@pytest.mark.parametrize("cls", [SeedAdam, SeedAdagrad])
def test_cuda_masked_and_fused_paths_agree(cls) -> None:
    lay = ParamLayout()
    lay.add("w", (300, 200), fan_in=300)
    S = 3
    start = torch.randn(S, lay.size, generator=torch.Generator().manual_seed(0)).cuda()
    runs = []
    for fused in (False, True):
        fp = FlatParams(lay, start.clone())
        opt = cls(fp, 1e-3, fused=fused)
        alive = torch.tensor([True, False, True], device="cuda")
        gen = torch.Generator().manual_seed(1)
        for _ in range(10):
            opt.step(alive, [torch.randn(S, 300, 200, generator=gen).cuda()])
        runs.append(fp.data.cpu())
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-5, atol=1e-6)
    assert torch.equal(runs[0][1], start[1].cpu()) and torch.equal(runs[1][1], start[1].cpu())


# ---- the trainer on the device -------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_a_diverging_seed_leaves_the_others_training(device) -> None:
    trial = make_trial([0, 1, 2], epochs=1, checkpoints=[0, 1], trace_every=5)
    run = TrialRun(trial, study="t", study_uri=None, plan=plan_device(cpus=1, gpus=gpus(device)))
    assert run.device.type == device
    run.params.data[1].mul_(1e30)  # seed 1's loss overflows on the first step
    poisoned = run.params.data[1].cpu().clone()
    res = run.run()
    assert res.alive == [True, False, True]
    assert torch.equal(res.state["flat"][1], poisoned)
    assert torch.isfinite(res.state["flat"][[0, 2]]).all()
    last = {r["seed"]: r for r in res.checkpoint_rows if r["epoch"] == 1}
    assert last[1]["status"] == "diverged"
    assert all(last[s]["status"] == "ok" and math.isfinite(last[s]["loss"]) for s in (0, 2))


@pytest.mark.parametrize("device", DEVICES)
def test_resume_on_the_same_device_is_bitwise(device, tmp_path) -> None:
    """N epochs, save, M more == load the saved state, M more: bitwise, on CPU and on CUDA (same device,
    same kernels, deterministic reductions for these shapes)."""
    trial = make_trial([0, 4, 9], epochs=3, checkpoints=[0, 1, 3], trace_every=7, optimizer="adam")
    kw = dict(study="t", study_uri=None, cpus=1, gpus=gpus(device))
    full = run_trial(trial, **kw)
    run_trial(trial, **kw, stop_after_epoch=1, checkpoint_dir=str(tmp_path))
    resumed = run_trial(trial, **kw, resume_from=str(tmp_path))
    assert resumed.step == full.step
    assert torch.equal(resumed.state["flat"], full.state["flat"])
    for k, v in full.state["opt"].items():
        assert torch.equal(resumed.state["opt"][k], v) if isinstance(v, torch.Tensor) else resumed.state["opt"][k] == v


def _alone_and_in_block(device: str, **kw) -> tuple[dict, dict]:
    """Seed 3 trained alone and inside a block of 4: its trace rows' losses and its last checkpoint row."""
    out = []
    for seeds in ([3], [0, 1, 2, 3]):
        res = run_trial(make_trial(seeds, **kw), study="t", study_uri=None, cpus=1, gpus=gpus(device))
        losses = _trace_losses(res, 3)
        last = max((r for r in res.checkpoint_rows if r["seed"] == 3), key=lambda r: r["epoch"])
        out.append({"losses": losses, "row": last})
    return out[0], out[1]


# the checkpoint's continuous metrics; MIG is a histogram statistic (a code that crosses a bin edge moves it by
# a step), held to an absolute bound
CHECKPOINT_VALUES = {"kl": 1e-2, "dto": 1e-2}
MIG_ATOL = 0.02


@pytest.mark.parametrize("device", DEVICES)
def test_seed_alone_and_in_a_block_of_4_follow_the_same_losses_and_metrics(device) -> None:
    """25 steps of 64, then the checkpoint's metrics. CPU: bitwise. CUDA: losses rtol 1e-3, KL and DtO rtol
    1e-2, MIG atol 0.02 (asserted bounds, not yet run on a GPU)."""
    alone, block = _alone_and_in_block(device, epochs=1, checkpoints=[1], trace_every=1,
                                       metrics=["polarized", "dto", "mig"])
    assert alone["losses"].numel() == 25 and bool((alone["losses"][0] != alone["losses"][-1]).item())
    a, b = alone["row"], block["row"]
    assert a["epoch"] == b["epoch"] == 1 and a["evaluated"] == b["evaluated"] == ["polarized", "dto", "mig"]
    if device == "cpu":
        assert torch.equal(block["losses"], alone["losses"])
        assert {k: b[k] for k in (*CHECKPOINT_VALUES, "mig", "active_units")} == \
            {k: a[k] for k in (*CHECKPOINT_VALUES, "mig", "active_units")}
    else:
        torch.testing.assert_close(block["losses"], alone["losses"], rtol=1e-3, atol=0)
        for key, rtol in CHECKPOINT_VALUES.items():
            assert math.isclose(b[key], a[key], rel_tol=rtol), (key, a[key], b[key])
        assert abs(b["mig"] - a["mig"]) <= MIG_ATOL, (a["mig"], b["mig"])


# ---- device plan -------------------------------------------------------------------------------------------------
@pytest.fixture
def restore_cuda_flags():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_precisions_and_the_cpu_plan_is_always_fp32(restore_cuda_flags) -> None:
    assert PRECISIONS == ("fp32", "tf32", "bf16")
    for p in PRECISIONS:
        plan = plan_device(cpus=1, gpus=0, precision=p)
        assert plan.device.type == "cpu" and not plan.bf16 and not plan.tf32 and plan.gpu_fraction == 0
    with pytest.raises(ValueError, match="allowed: fp32, tf32, bf16"):
        plan_device(gpus=0, precision="fp16")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    apply_device_plan(plan_device(cpus=1, gpus=0, precision="fp32"))  # a CPU plan leaves CUDA settings alone
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_cuda_plan_sets_tf32_explicitly_and_the_memory_share(precision, restore_cuda_flags, monkeypatch) -> None:
    """apply_device_plan's CUDA branch, on any machine (the CUDA call recorded, not made)."""
    calls = []
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, d=None: calls.append((f, d)))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    cuda0 = torch.device("cuda", 0)
    for before in (True, False):  # a reused process may come with either setting
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = before
        apply_device_plan(DevicePlan(cuda0, 1, 0.25, bf16=precision == "bf16", tf32=precision == "tf32"))
        assert torch.backends.cuda.matmul.allow_tf32 is (precision == "tf32")
        assert torch.backends.cudnn.allow_tf32 is (precision == "tf32")
    assert calls == [(0.25, cuda0)] * 2
    apply_device_plan(DevicePlan(cuda0, 1, 1.0, bf16=False, tf32=False))  # a whole GPU: no cap
    assert len(calls) == 2


@cuda_only
def test_a_fractional_share_caps_this_process_memory(restore_cuda_flags) -> None:
    plan = plan_device(cpus=1, gpus=0.25)
    assert plan.device.type == "cuda" and plan.gpu_fraction == 0.25
    try:
        apply_device_plan(plan)
        assert torch.cuda.get_per_process_memory_fraction(plan.device) == pytest.approx(0.25)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, plan.device)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("device", DEVICES)
def test_every_precision_trains_to_finite_losses(device, precision, restore_cuda_flags) -> None:
    trial = dataclasses.replace(make_trial([0, 1], epochs=1, checkpoints=[0, 1], trace_every=5), precision=precision)
    res = run_trial(trial, study="t", study_uri=None, cpus=1, gpus=gpus(device))
    assert res.alive == [True, True]
    assert all(r["status"] == "ok" and math.isfinite(r["loss"]) for r in res.checkpoint_rows)
    assert all(math.isfinite(r["loss"]) for r in res.trace_rows)
    if device == "cuda":
        assert torch.backends.cuda.matmul.allow_tf32 is (precision == "tf32")
    if device == "cpu" and precision != "fp32":  # a no-op on the CPU: the fp32 run, bit for bit
        fp32 = run_trial(dataclasses.replace(trial, precision="fp32"), study="t", study_uri=None, cpus=1, gpus=0)
        assert torch.equal(res.state["flat"], fp32.state["flat"])


# ---- the step replayed from a CUDA graph (train.cuda_graphs; emulated on the CPU) ------------------------------
def _graph_run(trial, device: str, graphed: bool, precision: str = "fp32", dataset=None) -> TrialRun:
    trial = dataclasses.replace(trial, precision=precision, cuda_graphs=graphed)
    plan = plan_device(cpus=1, gpus=gpus(device), precision=precision)
    apply_device_plan(plan)
    mode = None if device == "cuda" or not graphed else "emulate"
    run = TrialRun(trial, study="t", study_uri=None, plan=plan, dataset=dataset, step_graph=mode)
    assert (run.step_graph is not None) == graphed, run.graph_note
    return run


def _trace_losses(res, seed: int) -> torch.Tensor:
    return torch.tensor([loss for _, loss in sorted((r["step"], r["loss"]) for r in res.trace_rows
                                                     if r["seed"] == seed)], dtype=torch.float64)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("arch", ["linear", "conv"])
@pytest.mark.parametrize("device", DEVICES)
def test_graphed_steps_follow_the_eager_losses(device, arch, precision, restore_cuda_flags) -> None:
    """A graph replays the kernels the eager step runs, so on CUDA the per-step losses of 20+ steps are held
    to the block-independence bound above (rtol 1e-3; bf16 compared with bf16). This bound is not yet measured
    on a GPU for graphs. On the CPU (emulated): bitwise."""
    from trainhelpers import TinyImages

    kw = dict(epochs=1, checkpoints=[1], trace_every=1)
    data = None
    if arch == "conv":
        kw.update(arch="conv", hparams={"beta": 4.0}, latent_dim=4, likelihood="bernoulli", batch_size=8,
                  dataset="tiny_images", dataset_options={})
        data = TinyImages(1)
    trial = make_trial([0, 1, 2, 3], **kw)
    eager = _graph_run(trial, device, False, precision, data).run()
    graphed_run = _graph_run(trial, device, True, precision, data)
    graphed = graphed_run.run()
    assert graphed_run.step_graph.replays == graphed.step >= 20
    for s in range(4):
        a, b = _trace_losses(eager, s), _trace_losses(graphed, s)
        assert a.numel() == graphed.step and torch.isfinite(b).all()
        if device == "cpu":
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(b, a, rtol=1e-3, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_graphed_steps_freeze_a_diverging_seed(device) -> None:
    run = _graph_run(make_trial([0, 1, 2], epochs=1, checkpoints=[0, 1], trace_every=5), device, True)
    run.params.data[1].mul_(1e30)
    poisoned = run.params.data[1].cpu().clone()
    res = run.run()
    assert res.alive == [True, False, True]
    assert torch.equal(res.state["flat"][1], poisoned)
    assert torch.isfinite(res.state["flat"][[0, 2]]).all()


@pytest.mark.parametrize("device", DEVICES)
def test_graphed_resume_is_bitwise(device) -> None:
    """Every step of a graphed run is a replay (warm-up is undone), so a resumed run, which captures its own
    graph, continues bit for bit."""
    trial = make_trial([0, 4, 9], epochs=3, checkpoints=[0, 1, 3], trace_every=7, optimizer="adam")
    full = _graph_run(trial, device, True).run()
    first = _graph_run(trial, device, True).run(stop_after_epoch=1)
    resumed = _graph_run(trial, device, True)
    resumed.load_state_dict(first.state)
    rest = resumed.run()
    assert rest.step == full.step
    assert torch.equal(rest.state["flat"], full.state["flat"])
    for k in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(rest.state["opt"][k], full.state["opt"][k])
