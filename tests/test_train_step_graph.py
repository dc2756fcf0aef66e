"""`train.cuda_graphs`: the training step captured once and replayed (workers/step_graph.py).

On a CPU the graph protocol runs emulated (`TrialRun(step_graph="emulate")`): warm-up passes, the state
restored after them, every step's inputs copied into the static buffers and the step run on those. A run
stepped that way must equal the eager run bit for bit: any input that bypassed the static buffers, or any
tensor the step writes that the restore list misses, would show here. Exact resume and the real capture
are tested in tests/test_cuda_paths.py (on the CPU emulated, on CUDA captured).
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.overrides import TorchFunctionMode
from trainhelpers import TinyImages, make_trial

from sweep.spec import validate_study
from workers.device import plan_device
from workers.step_graph import WARMUP_PASSES, StepGraph
from workers.train import TrialRun

CPU = plan_device(cpus=1, gpus=0)

CASES = [
    dict(model="beta_vae", arch="linear"),
    dict(model="beta_vae_sigma", arch="linear"),
    dict(model="beta_tcvae", dataset="synth_nonlin", arch="mlp", hparams={"beta": 6.0}, optimizer="adagrad", lr=1e-2),
    dict(model="factorvae", hparams={"gamma": 10.0}, n=200, batch_size=8),
    dict(model="beta_vae", arch="conv", hparams={"beta": 4.0}, latent_dim=4, likelihood="bernoulli", batch_size=8,
         dataset="tiny_images", dataset_options={}),
]


def build(trial, mode: str, **kw) -> TrialRun:
    data = TinyImages(1) if trial.config.dataset == "tiny_images" else None
    return TrialRun(trial, study="t", study_uri=None, plan=CPU, dataset=data, step_graph=mode, **kw)


def same_run(a, b) -> None:
    assert torch.equal(a.state["flat"], b.state["flat"])
    for k, v in a.state["opt"].items():
        assert torch.equal(v, b.state["opt"][k]) if isinstance(v, torch.Tensor) else v == b.state["opt"][k]
    if a.state["disc_flat"] is not None:
        assert torch.equal(a.state["disc_flat"], b.state["disc_flat"])
    assert torch.equal(a.state["alive"], b.state["alive"])
    assert [(r["seed"], r["epoch"], r["loss"], r["status"]) for r in a.checkpoint_rows] == \
        [(r["seed"], r["epoch"], r["loss"], r["status"]) for r in b.checkpoint_rows]
    assert [(r["seed"], r["step"], r["loss"]) for r in a.trace_rows] == \
        [(r["seed"], r["step"], r["loss"]) for r in b.trace_rows]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['model']}-{c.get('arch', 'linear')}")
def test_emulated_step_graph_equals_eager_bitwise(case) -> None:
    trial = make_trial([0, 1, 2], epochs=2, checkpoints=[0, 1, 2], trace_every=3, **case)
    eager = build(trial, "eager")
    graphed = build(trial, "emulate")
    assert graphed.step_graph is not None and graphed.graph_note == ""
    a, b = eager.run(), graphed.run()
    assert b.step >= 20 and graphed.step_graph.replays == b.step
    same_run(a, b)


def test_emulated_step_graph_freezes_a_diverging_seed_as_the_eager_step_does() -> None:
    trial = make_trial([0, 1, 2], epochs=2, checkpoints=[0, 1, 2], trace_every=5)
    runs = []
    for mode in ("eager", "emulate"):
        run = build(trial, mode)
        run.params.data[1].mul_(1e30)  # seed 1's loss overflows on the first step
        runs.append((run.params.data[1].clone(), run.run()))
    (poisoned, eager), (_, graphed) = runs
    assert graphed.alive == [True, False, True]
    assert torch.equal(graphed.state["flat"][1], poisoned)  # frozen from the first step, warm-up included
    same_run(eager, graphed)


@pytest.mark.parametrize(("case", "why"), [
    (dict(model="slowvae", hparams={"beta": 1.0, "gamma": 10.0, "rate": 6.0}), "draws each step's partners"),
    (dict(model="annealed_vae", hparams={"c_max": 5.0, "iteration_threshold": 100.0, "gamma": 1000.0}),
     "follows the step count"),
], ids=["paired", "annealed"])
def test_ineligible_trials_step_eagerly_and_say_why(case, why) -> None:
    trial = make_trial([0, 1], epochs=1, **case)
    with pytest.warns(RuntimeWarning, match=why):
        run = build(trial, "emulate")
    assert run.step_graph is None and why in run.graph_note
    assert torch.equal(run.run().state["flat"], build(trial, "eager").run().state["flat"])


def test_cuda_graphs_on_a_cpu_trial_is_a_no_op_with_a_note() -> None:
    spec = {"study": "g", "grid": {"dataset": ["synth_lin"], "model": ["beta_vae"], "seeds": 2},
            "overrides": {"synth_lin": {"n": 500}},
            "train": {"epochs": 1, "cuda_graphs": True}, "eval": {"metrics": ["polarized"]}}
    trial = validate_study(spec).trials[0]
    assert trial.cuda_graphs and trial.to_dict()["cuda_graphs"] is True
    with pytest.warns(RuntimeWarning, match="need a CUDA device"):
        run = TrialRun(trial, study="g", study_uri=None, plan=CPU)
    assert run.step_graph is None
    assert run.run().step == run.steps_per_epoch


def test_step_graph_restores_what_its_warm_up_wrote() -> None:
    counter = torch.zeros(2)
    seen = []

    def step(x, eps, perm):
        counter.add_(x)
        seen.append(float(counter[0]))
        return counter.clone()

    graph = StepGraph(step, [counter], torch.device("cpu"), emulate=True, warmup=3)
    out = graph(torch.ones(2), None, None)
    assert seen == [1.0, 2.0, 3.0, 1.0]  # three warm-up passes, undone, then the step itself
    assert torch.equal(out, torch.ones(2))
    out = graph(torch.full((2,), 5.0), None, None)  # the next input goes through the static buffer
    assert torch.equal(out, torch.full((2,), 6.0)) and graph.replays == 2
    with pytest.raises(ValueError, match="CUDA device"):
        StepGraph(step, [counter], torch.device("cpu"))


def test_a_failed_capture_restores_the_state_and_the_trial_goes_on_eagerly() -> None:
    trial = make_trial([0, 1], epochs=1, trace_every=3)
    run = build(trial, "emulate")
    real = run.step_graph.fn

    def breaks_after_one_warm_up_pass(*inputs):
        real(*inputs)  # writes parameters, optimiser state and alive, as a warm-up pass does
        raise RuntimeError("operation not permitted when stream is capturing")

    run.step_graph.fn = breaks_after_one_warm_up_pass
    with pytest.warns(RuntimeWarning, match="capture failed"):
        res = run.run()
    assert run.step_graph is None and "operation not permitted" in run.graph_note
    same_run(build(trial, "eager").run(), res)


def test_an_optimiser_without_its_fused_kernel_steps_eagerly_and_says_why(monkeypatch) -> None:
    monkeypatch.setattr("workers.models.optim.fused_kernel_available", lambda op, device_type: False)
    trial = make_trial([0, 1], epochs=1)
    why = "no _fused_adam_ kernel for cpu, and the masked update the optimiser takes is not captured"
    with pytest.warns(RuntimeWarning, match=why):
        run = build(trial, "emulate")
    assert run.step_graph is None and not run.opt.fused
    assert run.run().step == run.steps_per_epoch


class HostReads(TorchFunctionMode):
    """Counts the calls that read a tensor's value on the host or move data between devices: on CUDA each is
    a sync, and inside a graph capture an error (or a copy the replays would not repeat). Dtype-only `.to`
    is not counted."""

    READS = {"item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__", "__array__",
             "nonzero", "masked_select", "unique"}

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if name in self.READS:
            self.calls[name] += 1
        elif name == "to" and ("device" in kwargs or any(isinstance(a, (str, torch.device)) for a in args[1:])):
            self.calls["to(device)"] += 1
        elif name == "__getitem__":
            index = args[1] if isinstance(args[1], tuple) else (args[1],)
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index):
                self.calls["boolean index"] += 1  # a data-dependent shape
        return func(*args, **kwargs)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['model']}-{c.get('arch', 'linear')}")
def test_the_captured_step_reads_nothing_on_the_host(case) -> None:
    """What a CUDA graph captures (`device_step`, after the warm-up passes) makes no host read and no device
    move: a `.item()` or a `.to(device)` there would make the real capture fail or go stale, which the
    emulated graph on a CPU cannot show by itself."""
    trial = make_trial([0, 1, 2], epochs=1, **case)
    run = build(trial, "emulate")
    step, calls, reads = run.step_graph.fn, [0], HostReads()

    def watched(*inputs):
        calls[0] += 1
        if calls[0] <= WARMUP_PASSES:
            return step(*inputs)
        with reads:
            return step(*inputs)

    run.step_graph.fn = watched
    res = run.run()
    assert calls[0] == WARMUP_PASSES + res.step > WARMUP_PASSES + 1
    assert dict(reads.calls) == {}
