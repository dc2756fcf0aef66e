"""Seed vectorisation: a seed's trajectory does not depend on its block; divergence stays in its seed.

Tolerance (CPU, float32, >= 20 steps): seed 3 trained alone and inside a block of 8 (dense nets) or 3
(FactorVAE, conv) ends with bitwise-equal parameters in most cases measured (beta_vae, beta_tcvae,
dip_vae_ii, FactorVAE incl. its discriminator). Where a BLAS kernel picks another blocking for another
batch count, single elements differ by float32 rounding: beta_vae_sigma's Adam moment by 3e-8 (1 ulp) after
25 steps. The assertions below use that bound for dense nets (rtol 1e-5 / atol 1e-6). The conv nets are
bitwise: on a CPU they run one plain convolution per seed (networks "per_seed" form), the same calls
whatever the block (a grouped convolution over the block differed by up to 5e-5 after 20 Adam steps).
"""

from __future__ import annotations

import math

import pytest
import torch
from trainhelpers import TinyImages, make_trial

from workers.device import plan_device
from workers.train import TrialRun, run_trial

CPU = plan_device(cpus=1, gpus=0)


def final_row(trial, seed, **kw) -> torch.Tensor:
    res = run_trial(trial, study="t", study_uri=None, cpus=1, gpus=0, **kw)
    s = trial.seeds.index(seed)
    return res.state["flat"][s], res.state["opt"], s, res


@pytest.mark.parametrize("case", [
    dict(model="beta_vae", arch="linear"),
    dict(model="beta_vae_sigma", arch="linear"),
    dict(model="beta_tcvae", dataset="synth_nonlin", arch="mlp", hparams={"beta": 6.0}, optimizer="adagrad",
         lr=1e-2),
    dict(model="dip_vae_ii", arch="linear", hparams={"lambda_od": 2.0, "lambda_d": 2.0}),
], ids=lambda c: c["model"])
def test_seed_alone_equals_seed_in_a_block_of_8(case) -> None:
    # n=2000 -> 1600 training points -> 25 steps per epoch of 64
    alone, opt_a, sa, res = final_row(make_trial([3], epochs=1, **case), 3)
    block, opt_b, sb, _ = final_row(make_trial([0, 1, 2, 3, 4, 5, 6, 7], epochs=1, **case), 3)
    assert res.step >= 20
    torch.testing.assert_close(block, alone, rtol=1e-5, atol=1e-6)
    for k in ("exp_avg", "exp_avg_sq", "sum"):
        if k in opt_a:
            torch.testing.assert_close(opt_b[k][sb], opt_a[k][sa], rtol=1e-5, atol=1e-6)
    assert not torch.equal(block, final_row(make_trial([3], epochs=0, **case), 3)[0])  # it did train


def test_factorvae_discriminator_is_per_seed_too() -> None:
    kw = dict(model="factorvae", hparams={"gamma": 10.0}, n=100, batch_size=4, epochs=1)  # 20 steps
    alone = run_trial(make_trial([3], **kw), study="t", study_uri=None, cpus=1, gpus=0)
    block = run_trial(make_trial([1, 3, 5], **kw), study="t", study_uri=None, cpus=1, gpus=0)
    assert alone.step == 20
    torch.testing.assert_close(block.state["flat"][1], alone.state["flat"][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(block.state["disc_flat"][1], alone.state["disc_flat"][0], rtol=1e-5, atol=1e-6)
    # the discriminator has its own Adam (1e-4, betas 0.5/0.9): it moved
    fresh = TrialRun(make_trial([3], **kw), study="t", study_uri=None, plan=CPU)
    assert not torch.equal(fresh.disc.data, alone.state["disc_flat"])


def test_conv_seed_alone_equals_seed_in_a_block() -> None:
    kw = dict(model="beta_vae", arch="conv", hparams={"beta": 4.0}, latent_dim=4, likelihood="bernoulli",
              batch_size=8, epochs=1, dataset="tiny_images", dataset_options={})
    data = TinyImages(3)
    alone = run_trial(make_trial([3], **kw), study="t", study_uri=None, cpus=1, gpus=0, dataset=data)
    block = run_trial(make_trial([0, 3, 5], **kw), study="t", study_uri=None, cpus=1, gpus=0, dataset=data)
    assert alone.step == 20  # 160 training images / 8
    assert torch.equal(block.state["flat"][1], alone.state["flat"][0])
    for k in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(block.state["opt"][k][1], alone.state["opt"][k][0])


def test_a_diverging_seed_is_frozen_and_marked_while_the_others_continue_unchanged() -> None:
    trial = make_trial([0, 1, 2], epochs=2, checkpoints=[0, 1, 2], trace_every=5)
    run = TrialRun(trial, study="t", study_uri=None, plan=CPU)
    run.params.data[1].mul_(1e30)  # seed 1's loss overflows on the first step
    poisoned = run.params.data[1].clone()
    res = run.run()
    assert res.alive == [True, False, True]
    assert torch.equal(res.state["flat"][1], poisoned)  # frozen: no update ever applied
    for k in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(res.state["opt"][k][1], torch.zeros_like(poisoned))
    rows = {(r["seed"], r["epoch"]): r for r in res.checkpoint_rows}
    assert rows[(1, 0)]["status"] == "diverged" or rows[(1, 0)]["status"] == "ok"  # epoch 0 precedes training
    assert rows[(1, 2)]["status"] == "diverged" and rows[(0, 2)]["status"] == "ok"
    assert all(math.isfinite(rows[(s, 2)]["loss"]) for s in (0, 2))
    assert {r["seed"] for r in res.trace_rows} == {0, 2}  # no trace rows for the frozen seed
    # the healthy seeds trained exactly as they would without the diverged neighbour
    clean = run_trial(make_trial([0, 2], epochs=2, checkpoints=[0, 1, 2], trace_every=5), study="t",
                      study_uri=None, cpus=1, gpus=0)
    torch.testing.assert_close(res.state["flat"][[0, 2]], clean.state["flat"], rtol=0, atol=0)
