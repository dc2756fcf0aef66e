"""bench/gpu_throughput.py --small runs from a source checkout (PYTHONPATH=.), without Ray, and reports one
measured entry per case (CPU-sized here; the full run is for a GPU machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_throughput_small(tmp_path: Path) -> None:
    from workers.models.optim import fused_kernel_available

    out = tmp_path / "gpu_throughput.json"
    env = {**os.environ, "PYTHONPATH": "."}
    proc = subprocess.run([sys.executable, "bench/gpu_throughput.py", "--small", "--json", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["modules"] == {"ray": False, "duckdb": False, "pydantic": False}
    assert res["not_measured"] == []
    kinds = ("mlp_dsprites", "conv_dsprites", "conv_shapes3d", "factorvae_dsprites")
    expected = {(k, "subset", "fp32", S) for k in kinds for S in (1, 4)}
    if not res["cpu_figures"]:  # a CUDA machine runs every precision workers.device offers
        expected = {(k, "subset", p, S) for k in kinds for p in res["precisions_available"] for S in (1, 4)}
    got = [(c["case"], c["data"], c["precision"], c["S"]) for c in res["cases"]]
    assert sorted(got) == sorted(expected)  # one entry per case, none twice
    for c in res["cases"]:
        for key in ("s_per_step", "restarts_per_hour", "tflops", "opt_gbs", "ref_s_per_step"):
            assert c[key] > 0, (c["case"], c["S"], key, c[key])
        assert c["restarts_per_hour"] == c["S"] * 3600 / (c["s_per_step"] * c["restart_steps"])
        # CPU: one fused kernel over the live seeds; CUDA: per seed with the frozen flag on the device, where
        # this torch build has the kernel
        cuda_path = "fused_found_inf" if fused_kernel_available(f"_fused_{c['optimizer']}_", "cuda") else "masked"
        assert c["optimizer_update"] == ("fused" if res["cpu_figures"] else cuda_path)
    steps = {k: v["restart_steps"] for k, v in res["schedules"].items()}
    assert steps == {"mlp_dsprites": 50 * 9216, "conv_dsprites": 33 * 9216, "conv_shapes3d": 50 * 6000,
                     "factorvae_dsprites": 33 * 9216}
    assert res["bounds"]["copy_gbs"] > 0
    assert "command: PYTHONPATH=. python bench/gpu_throughput.py --small" in proc.stdout
    assert "the trainer's optimiser update (workers.models.optim): " in proc.stdout
    assert proc.stdout.startswith("machine: ")


def test_conv_forms_bench_small(tmp_path: Path) -> None:
    """bench/conv_forms.py times every conv form of the trainer's step side by side, without Ray."""
    from workers.models.networks import CONV_FORMS

    out = tmp_path / "conv_forms.json"
    env = {**os.environ, "PYTHONPATH": "."}
    cmd = [sys.executable, "bench/conv_forms.py", "--cases", "conv_dsprites,factorvae_dsprites", "--seeds", "1,2",
           "--subset", "64", "--steps", "1", "--rounds", "1", "--threads", "1", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert "imported: ray False, duckdb False, pydantic False" in proc.stdout
    assert [(c["case"], c["S"], c["form"]) for c in res["cases"]] == [
        (case, S, form) for case in ("conv_dsprites", "factorvae_dsprites") for S in (1, 2) for form in CONV_FORMS]
    assert res["not_measured"] == []
    for c in res["cases"]:
        assert c["s_per_step"] > 0 and c["timed_steps"] == 1
        assert c["gap"] < 1e-4  # the forms compute one function (losses and codes)
    assert res["default_form"] == ("per_seed" if res["cpu_figures"] else "grouped")
    assert [c["form"] for c in res["cases"] if c["default"]] == [res["default_form"]] * 4


def test_flop_count_matches_torch_flop_counter() -> None:
    """The bench's FLOPs per seed-step (from layer shapes) equal torch's own count of one training step."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import gpu_throughput as g
    finally:
        sys.path.remove(str(ROOT / "bench"))
    from workers.data import load
    from workers.device import plan_device
    from workers.train import TrialRun

    for name in g.KINDS:
        kind = g.kind_for(name)
        run = TrialRun(g.trial_for(kind, 1, "fp32", 128), study="t", study_uri=None, plan=plan_device(gpus=0),
                       dataset=load(kind.dataset))
        B, d = run.batch_size, run.vae.latent_dim
        x = run.data.batch(torch.arange(B).view(1, B))
        perm = torch.rand(1, B, d).argsort(1) if run.disc is not None else None
        with FlopCounterMode(display=False) as counter:
            terms = run.vae.terms(run.params.leaves, x, torch.randn(1, B, d), step=0, dataset_size=run.data.n,
                                  disc_params=None if run.disc is None else run.disc.leaves, perm=perm)
            total = terms.loss.sum() + (0 if terms.disc_loss is None else terms.disc_loss.sum())
            leaves = run.params.leaf_list + ([] if run.disc is None else run.disc.leaf_list)
            torch.autograd.grad(total, leaves, allow_unused=True)
        assert g.step_flops_per_seed(run) == counter.get_total_flops(), name


def load_bench(name: str, monkeypatch):
    """bench/<name>.py imported as when run as a script (bench/ on the path, for bench/machine.py)."""
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def test_every_bench_command_of_the_gpu_session_script_parses(monkeypatch) -> None:
    """bench/gpu_session.sh runs once per GPU-lent session: a flag a bench does not take would cost that
    session's figures. Each `python3 bench/*.py ...` line is parsed by its bench as on a CUDA machine."""
    import shlex

    from workers.device import PRECISIONS

    benches = {name: load_bench(name, monkeypatch) for name in ("gpu_throughput", "conv_forms")}
    script = (ROOT / "bench" / "gpu_session.sh").read_text().replace("\\\n", " ")
    parsed = []
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        if "python3" not in words or not any(w.startswith("bench/") for w in words):
            continue
        at = next(i for i, w in enumerate(words) if w.startswith("bench/"))
        name = Path(words[at]).stem
        argv = words[at + 1:words.index("2>&1")] if "2>&1" in words else words[at + 1:]
        if name == "conv_forms":
            args = benches[name].parse_args(argv, on_cpu=False)
        else:
            args = benches[name].parse_args(argv)
            assert args.precisions and set(args.precisions.split(",")) <= set(PRECISIONS)
        assert args.json, f"{name}: the session keeps every bench's figures as JSON"
        parsed.append(name)
    assert parsed == ["gpu_throughput", "conv_forms", "gpu_throughput"]


def test_a_failing_case_is_listed_as_not_measured_and_the_run_goes_on(tmp_path: Path, monkeypatch) -> None:
    """On a lent GPU the bench runs once: an error in one case (a CUDA-only failure, say) is recorded with
    its reason, and the cases after it are still measured."""
    bench = load_bench("gpu_throughput", monkeypatch)
    measured = bench.run_case

    def run_case(kind, ds, S, *args, **kw):
        if S == 1:
            raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore detail")
        return measured(kind, ds, S, *args, **kw)

    monkeypatch.setattr(bench, "run_case", run_case)
    out = tmp_path / "r.json"
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--small", "--cases", "mlp_dsprites", "--figures", "none", "--json", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)  # --small on a CPU runs on one thread; the suite goes on in this process
    res = json.loads(out.read_text())
    assert res["not_measured"] == [{"case": "mlp_dsprites", "data": "subset", "precision": "fp32", "S": 1,
                                    "why": "RuntimeError: CUDA error: an illegal memory access was encountered"}]
    assert [(c["case"], c["S"]) for c in res["cases"]] == [("mlp_dsprites", 4)]
