"""Paired objectives (SlowVAE, Ada-GVAE, PCL): known answers, block independence and exact resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from trainhelpers import make_trial

from sweep.spec import SpecError, validate_study
from workers.data.synthetic import SynthLin
from workers.metrics.evaluate import evaluate_checkpoint
from workers.models import loss_terms as O
from workers.models.vae import BatchedVAE
from workers.train import run_trial

DS = SynthLin(n=2000, data_seed=0)  # the trainer tests' synth_lin (1,600 training points: 25 steps of 64)
PAIRED = {
    "slowvae": {"beta": 1e-3, "gamma": 1e-2, "rate": 6.0, "rate_data": 1.0},
    "ada_gvae": {"beta": 1e-3, "k": -1.0},
    "pcl": {"rate_data": 1.0},
}


def test_ada_gvae_averages_exactly_the_latents_the_pair_shares() -> None:
    mu1 = torch.tensor([[[0.3, -1.0, 2.0, 0.5]]])
    mu2 = torch.tensor([[[0.3, -1.0, -2.0, 0.5]]])  # latent 2 differs
    lv1 = torch.tensor([[[-1.0, 0.0, -2.0, -0.5]]])
    lv2 = torch.tensor([[[-1.0, 0.0, -2.0, 0.5]]])  # latent 3: same mean, other variance
    delta = O.gaussian_kl_between(mu1, lv1, mu2, lv2)
    kl = torch.distributions.kl_divergence(torch.distributions.Normal(mu1, (0.5 * lv1).exp()),
                                           torch.distributions.Normal(mu2, (0.5 * lv2).exp()))
    torch.testing.assert_close(delta, 2 * kl)  # δ = 2 KL(q1 || q2)
    m1, l1, m2, l2, shared = O.ada_gvae_aggregate(mu1, lv1, mu2, lv2)
    # τ = (max δ + min δ)/2 = δ_2/2: latents 0, 1, 3 (δ = 0, 0, ≈0.37) are shared, latent 2 is not
    assert shared.tolist() == [[[True, True, False, True]]]
    torch.testing.assert_close(m1[..., [0, 1, 3]], mu1[..., [0, 1, 3]])
    torch.testing.assert_close(l1[..., 3], torch.log(0.5 * lv1[..., 3].exp() + 0.5 * lv2[..., 3].exp()))
    assert torch.equal(m1[..., 2], mu1[..., 2]) and torch.equal(m2[..., 2], mu2[..., 2])
    assert torch.equal(l2[..., 2], lv2[..., 2])
    assert torch.equal(m1, m2.where(~torch.tensor([False, False, True, False]), m1))
    # identical posteriors: every latent shared, the averages are the posteriors themselves
    same = O.ada_gvae_aggregate(mu1, lv1, mu1, lv1)
    assert bool(same[4].all()) and torch.allclose(same[0], mu1) and torch.allclose(same[1], lv1)


def test_slowvae_prior_density_and_cross_entropy_in_closed_form() -> None:
    rate = 6.0
    z, loc = torch.tensor([0.3, -0.2, 1.5]), torch.tensor([0.1, 0.4, 1.5])
    ref = torch.distributions.Laplace(loc, 1.0 / rate).log_prob(z)
    torch.testing.assert_close(O.laplace_log_density(z, loc, rate), ref)
    # −E_{N(m, σ²)}[log Laplace(z; 0, 1/λ)] by quadrature on a fine grid
    for m, logvar in ((0.0, 0.0), (0.7, -1.5), (-1.2, 0.8)):
        s = math.exp(0.5 * logvar)
        grid = torch.linspace(m - 12 * s, m + 12 * s, 400_001, dtype=torch.float64)
        w = torch.exp(-0.5 * ((grid - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
        integrand = -w * torch.distributions.Laplace(0.0, 1.0 / rate).log_prob(grid)
        numeric = torch.trapezoid(integrand, grid)
        closed = O.laplace_cross_entropy(torch.tensor(m, dtype=torch.float64),
                                         torch.tensor(logvar, dtype=torch.float64), rate)
        assert abs(float(closed - numeric)) < 1e-6


def test_slowvae_loss_terms() -> None:
    g = torch.Generator().manual_seed(0)
    mu1, mu2, lv1, lv2 = (torch.randn(2, 5, 3, generator=g) for _ in range(4))
    recon = torch.rand(2, 10, generator=g)
    base = O.slowvae_loss(recon, mu1, lv1, mu2, lv2, beta=2.0, gamma=0.0, rate=6.0)
    kl = O.kl_diag(torch.cat([mu1, mu2], 1), torch.cat([lv1, lv2], 1)).sum(-1).mean(1)
    torch.testing.assert_close(base, 2 * recon.mean(1) + 2.0 * kl)
    full = O.slowvae_loss(recon, mu1, lv1, mu2, lv2, beta=2.0, gamma=10.0, rate=6.0)
    h = O.normal_entropy(torch.cat([lv1, lv2], 1)).sum(-1).mean(1)
    ce = (O.laplace_cross_entropy(mu1 - mu2, lv1, 6.0) + O.laplace_cross_entropy(mu2 - mu1, lv2, 6.0)).sum(-1).mean(1)
    torch.testing.assert_close(full - base, 10.0 * (ce - h))
    # the Laplace term prefers slow codes: the pair with identical means pays less
    assert bool((O.slowvae_loss(recon, mu1, lv1, mu1, lv2, beta=2.0, gamma=10.0, rate=6.0) < full).all())


def test_pcl_loss_is_the_logistic_loss_of_true_against_shuffled_pairs() -> None:
    g = torch.Generator().manual_seed(1)
    h_t, h_prev = torch.randn(2, 6, 3, generator=g), torch.randn(2, 6, 3, generator=g)
    params = {"pcl.a": torch.ones(2, 3), "pcl.b": -torch.ones(2, 3), "pcl.c": torch.zeros(2, 3),
              "pcl.d": torch.zeros(2, 1)}
    pos = O.pcl_logits(params, h_t, h_prev)
    torch.testing.assert_close(pos, -(h_t - h_prev).abs().sum(-1) + h_t.square().sum(-1))  # the reference init
    neg = O.pcl_logits(params, h_t, h_prev.flip(1))
    ref = torch.stack([F.binary_cross_entropy_with_logits(torch.cat([pos[s], neg[s]]),
                                                          torch.cat([torch.ones(6), torch.zeros(6)]))
                       for s in range(2)])
    torch.testing.assert_close(O.pcl_loss(pos, neg), ref)


def test_pcl_has_no_posterior_so_posterior_metrics_are_null() -> None:
    trial = make_trial([0], model="pcl", hparams=PAIRED["pcl"], epochs=0)
    vae = BatchedVAE(trial.config, (3,))
    assert vae.posterior == "none" and {"pcl.a", "pcl.b", "pcl.c", "pcl.d"} <= set(vae.layout.entries)
    res = run_trial(trial, study="t", study_uri=None, cpus=1, gpus=0, dataset=DS)
    model = vae.seed_view(res.state["flat"], 0)
    out = evaluate_checkpoint(model, DS, metrics=["polarized", "mig"], eval_cfg=trial.eval.as_dict(), seed=0)
    assert out["polarized_delta_kl"] is None and out["active_units"] is None  # VAE-only values: null, not 0
    assert out["kl_per_dim"] is None and out["sigma2_per_dim"] is None
    assert out["mig"] is not None and out["active_units_mu"] is not None


@pytest.mark.parametrize("model", list(PAIRED))
def test_paired_seed_alone_equals_seed_in_a_block(model: str) -> None:
    kw = dict(model=model, hparams=PAIRED[model], epochs=1)
    alone = run_trial(make_trial([3], **kw), study="t", study_uri=None, cpus=1, gpus=0, dataset=DS)
    block = run_trial(make_trial([0, 1, 2, 3, 4, 5, 6, 7], **kw), study="t", study_uri=None, cpus=1, gpus=0,
                      dataset=DS)
    assert alone.step == 25
    torch.testing.assert_close(block.state["flat"][3], alone.state["flat"][0], rtol=1e-5, atol=1e-6)
    for k in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(block.state["opt"][k][3], alone.state["opt"][k][0], rtol=1e-5, atol=1e-6)
    start = run_trial(make_trial([3], **{**kw, "epochs": 0}), study="t", study_uri=None, cpus=1, gpus=0, dataset=DS)
    assert not torch.equal(alone.state["flat"], start.state["flat"])  # it trained
    assert all(r["status"] == "ok" for r in block.checkpoint_rows)


@pytest.mark.parametrize("model", list(PAIRED))
def test_paired_resume_after_a_checkpoint_ends_with_the_uninterrupted_parameters(model: str, tmp_path) -> None:
    trial = make_trial([0, 4, 9], model=model, hparams=PAIRED[model], epochs=3, checkpoints=[0, 1, 3],
                       trace_every=7)
    run = dict(study="t", study_uri=None, cpus=1, gpus=0, dataset=DS)
    full = run_trial(trial, **run)
    first = run_trial(trial, **run, stop_after_epoch=1, checkpoint_dir=str(tmp_path / "ck"))
    assert first.epoch == 1 and "pair" in first.state["streams"]
    resumed = run_trial(trial, **run, resume_from=str(tmp_path / "ck"))
    assert resumed.step == full.step == 75
    assert torch.equal(resumed.state["flat"], full.state["flat"])
    for k, v in full.state["opt"].items():
        assert torch.equal(resumed.state["opt"][k], v) if isinstance(v, torch.Tensor) else resumed.state["opt"][k] == v
    for a, b in zip(resumed.state["streams"]["pair"], full.state["streams"]["pair"], strict=True):
        assert torch.equal(a, b)
    assert [r["loss"] for r in resumed.checkpoint_rows] == [r["loss"] for r in full.checkpoint_rows[-3:]]


def test_existing_models_hold_no_pair_stream() -> None:
    res = run_trial(make_trial([0], epochs=0), study="t", study_uri=None, cpus=1, gpus=0, dataset=DS)
    assert "pair" not in res.state["streams"]


def _study(tmp_path, **grid) -> dict:
    return {"study": "t", "storage": str(tmp_path), "grid": {"seeds": 1, **grid}, "train": {"epochs": 1}}


def test_spec_fills_the_papers_defaults_for_the_paired_models(tmp_path) -> None:
    study = validate_study(_study(tmp_path, dataset=["dsprites", "synth_lin"], model=["slowvae", "ada_gvae", "pcl"]))
    hp = {(r.config.dataset, r.config.model): r.config.hparams for r in study.restarts}
    assert hp[("dsprites", "slowvae")] == {"beta": 1.0, "gamma": 10.0, "rate": 6.0, "rate_data": 1.0}  # Table 4.1
    assert hp[("synth_lin", "slowvae")] == {"beta": 1e-4, "gamma": 1e-3, "rate": 6.0, "rate_data": 1.0}
    assert hp[("dsprites", "ada_gvae")] == {"beta": 4.0, "k": -1.0}
    assert hp[("synth_lin", "pcl")] == {"rate_data": 1.0}
    with pytest.raises(SpecError, match="has none"):
        validate_study({**_study(tmp_path, dataset=["mnist"], model=["pcl"]),
                        "overrides": {"mnist": {"path": str(tmp_path)}}})
    with pytest.raises(SpecError, match="field 'k'"):
        validate_study(_study(tmp_path, dataset=["synth_lin"], model=["ada_gvae"], k=[2]))
