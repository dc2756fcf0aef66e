"""Each objective's loss on cases computed by hand (workers.models.objectives)."""

from __future__ import annotations

import math

import pytest
import torch

from workers.models import loss_terms as O
from workers.models.objectives import LossInputs, objective_loss


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def test_kl_diag_by_hand() -> None:
    # ½(μ² + σ² − log σ² − 1): μ=1, σ²=1 -> ½; μ=2, σ²=2 -> ½(4 + 2 − ln 2 − 1)
    kl = O.kl_diag(t([1.0, 2.0]), t([0.0, math.log(2.0)]))
    assert kl.tolist() == pytest.approx([0.5, 0.5 * (5.0 - math.log(2.0))], abs=1e-12)
    assert O.kl_diag(t([0.0]), t([0.0])).item() == 0.0  # the prior itself


def test_kl_full_by_hand_and_equal_to_diagonal_when_sigma_is_diagonal() -> None:
    # Σ = [[2, 1], [1, 2]]: tr 4, det 3 -> ½(0 + 4 − ln 3 − 2)
    L = torch.linalg.cholesky(t([[2.0, 1.0], [1.0, 2.0]]))
    assert O.kl_full(t([0.0, 0.0]), L).item() == pytest.approx(0.5 * (2.0 - math.log(3.0)), abs=1e-12)
    # with a mean: + ½‖μ‖²
    assert O.kl_full(t([1.0, -1.0]), L).item() == pytest.approx(0.5 * (4.0 - math.log(3.0)), abs=1e-12)
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 7, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 7, 3, generator=g, dtype=torch.float64)
    L_diag = torch.diag_embed(torch.exp(0.5 * logvar))
    torch.testing.assert_close(O.kl_full(mu, L_diag), O.kl_diag(mu, logvar).sum(-1), rtol=1e-12, atol=1e-12)


def test_recon_losses_are_summed_over_pixels() -> None:
    x = t([[[1.0, 2.0, 3.0]]])  # (S=1, B=1, D=3)
    assert O.recon_loss(x, torch.zeros_like(x), "gaussian").item() == pytest.approx(14.0)
    img = torch.ones(1, 2, 1, 4, 4, dtype=torch.float64)  # (S, B, C, H, W) all ones, logits 0 -> ln 2 per pixel
    r = O.recon_loss(img, torch.zeros_like(img), "bernoulli")
    assert r.shape == (1, 2)
    assert r.tolist()[0] == pytest.approx([16 * math.log(2.0)] * 2)
    with pytest.raises(ValueError, match="likelihood"):
        O.recon_loss(x, x, "poisson")


def _parts(S=2, B=4, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(S, B, d, generator=g, dtype=torch.float64)
    logvar = 0.3 * torch.randn(S, B, d, generator=g, dtype=torch.float64)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(S, B, d, generator=g, dtype=torch.float64)
    recon = torch.rand(S, B, generator=g, dtype=torch.float64)
    kl = O.kl_diag(mu, logvar).sum(-1)
    return dict(recon=recon, kl=kl, mu=mu, logvar=logvar, z=z, step=0, dataset_size=1000)


def test_beta_vae_ae_vae_losses_average_over_the_batch() -> None:
    p = _parts()
    rec, kl = p["recon"].mean(1), p["kl"].mean(1)
    torch.testing.assert_close(objective_loss("ae", {}, **p), rec)
    torch.testing.assert_close(objective_loss("vae", {}, **p), rec + kl)
    torch.testing.assert_close(objective_loss("beta_vae", {"beta": 4.0}, **p), rec + 4.0 * kl)
    torch.testing.assert_close(objective_loss("beta_vae_sigma", {"beta": 1e-4}, **p), rec + 1e-4 * kl)


def test_beta_tcvae_with_beta_one_is_the_vae() -> None:
    p = _parts()
    torch.testing.assert_close(objective_loss("beta_tcvae", {"beta": 1.0}, **p),
                               objective_loss("vae", {}, **p), rtol=0, atol=0)


def test_total_correlation_of_identical_posteriors_is_the_mws_constant() -> None:
    # Every point has the same posterior -> q(z) is that factorised Gaussian, so the true TC is 0 and the
    # minibatch-weighted estimate is exactly its constant (d − 1)·log N.
    S, B, d, N = 1, 5, 3, 1000
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(1, 1, d, generator=g, dtype=torch.float64).expand(S, B, d)
    logvar = torch.randn(1, 1, d, generator=g, dtype=torch.float64).expand(S, B, d)
    z = torch.randn(S, B, d, generator=g, dtype=torch.float64)
    tc = O.total_correlation_mws(z, mu, logvar, N)
    assert tc.item() == pytest.approx((d - 1) * math.log(N), abs=1e-9)
    # β-TCVAE adds (β − 1)·TC to the VAE loss
    p = _parts(S=1, B=B, d=d) | {"mu": mu, "logvar": logvar, "z": z, "dataset_size": N}
    diff = objective_loss("beta_tcvae", {"beta": 6.0}, **p) - objective_loss("vae", {}, **p)
    assert diff.item() == pytest.approx(5.0 * (d - 1) * math.log(N), abs=1e-9)


def test_total_correlation_of_a_single_point_equals_the_minibatch_constant() -> None:
    # B = 1: log q(z) = log q(z|x) − log N, each marginal likewise -> TC = (d − 1)·log N for any posterior.
    g = torch.Generator().manual_seed(2)
    mu, logvar, z = (torch.randn(3, 1, 4, generator=g, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(O.total_correlation_mws(z, mu, logvar, 50), torch.full((3,), 3 * math.log(50.0),
                                                                                      dtype=torch.float64))


def test_factorvae_terms_by_hand() -> None:
    logits = t([[[2.0, 0.5], [1.0, 1.0]]])  # (S=1, B=2, 2)
    assert O.factorvae_tc(logits).item() == pytest.approx((1.5 + 0.0) / 2)
    zero = torch.zeros(1, 3, 2, dtype=torch.float64)  # an undecided discriminator: ½(ln 2 + ln 2)
    assert O.factorvae_discriminator_loss(zero, zero).item() == pytest.approx(math.log(2.0))
    p = _parts(S=1, B=2)
    base = objective_loss("vae", {}, **p)
    torch.testing.assert_close(objective_loss("factorvae", {"gamma": 10.0}, **p, tc_logits=logits),
                               base + 10.0 * 0.75)
    # a discriminator that cannot tell z from its shuffle (equal logits) leaves the VAE loss
    torch.testing.assert_close(objective_loss("factorvae", {"gamma": 35.0}, **p, tc_logits=zero[:, :2]), base)


def test_permute_dims_permutes_each_latent_across_the_batch() -> None:
    z = t([[[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]])
    perm = torch.tensor([[[2, 0], [0, 2], [1, 1]]])
    assert O.permute_dims(z, perm).tolist() == [[[3.0, 10.0], [1.0, 30.0], [2.0, 20.0]]]


def test_dip_regularizer_by_hand() -> None:
    mu = t([[[1.0, 0.0], [-1.0, 0.0]]])  # Cov[mu] = diag(1, 0)
    lv = torch.zeros_like(mu)
    assert O.dip_regularizer(mu, lv, 3.0, 7.0, "i").item() == pytest.approx(7.0 * 1.0)  # (0 − 1)² on latent 2
    assert O.dip_regularizer(mu, lv, 3.0, 7.0, "ii").item() == pytest.approx(7.0 * 1.0)  # + E σ² = 1: (2−1)²
    mu2 = t([[[1.0, 1.0], [-1.0, -1.0]]])  # Cov = [[1, 1], [1, 1]]
    assert O.dip_regularizer(mu2, lv, 3.0, 7.0, "i").item() == pytest.approx(3.0 * 2.0)
    p = _parts()
    reg = O.dip_regularizer(p["mu"], p["logvar"], 2.0, 5.0, "ii")
    torch.testing.assert_close(objective_loss("dip_vae_ii", {"lambda_od": 2.0, "lambda_d": 5.0}, **p),
                               objective_loss("vae", {}, **p) + reg)


def test_annealed_vae_capacity_schedule() -> None:
    assert O.annealed_capacity(25.0, 0, 100_000) == 0.0
    assert O.annealed_capacity(25.0, 50_000, 100_000) == 12.5
    assert O.annealed_capacity(25.0, 200_000, 100_000) == 25.0
    p = _parts() | {"step": 50_000}
    hp = {"c_max": 25.0, "gamma": 1000.0, "iteration_threshold": 100_000.0}
    expected = p["recon"].mean(1) + 1000.0 * (p["kl"].mean(1) - 12.5).abs()
    torch.testing.assert_close(objective_loss("annealed_vae", hp, **p), expected)


def test_unknown_objective_is_named() -> None:
    with pytest.raises(ValueError, match="unknown objective 'wae'"):
        objective_loss("wae", {}, **_parts())


# ---- the registry and the regulariser convention -----------------------------------------------------------


def test_scaled_regularizers_by_hand() -> None:
    # on a synthetic set (scale s) the whole regulariser is multiplied by s; the reconstruction is not
    s = 1e-4
    p = _parts()
    rec, kl = p["recon"].mean(1), p["kl"].mean(1)
    tc = O.total_correlation_mws(p["z"], p["mu"], p["logvar"], p["dataset_size"])
    torch.testing.assert_close(objective_loss("beta_tcvae", {"beta": 6.0}, **p, regularizer_scale=s),
                               rec + s * (kl + 5.0 * tc))
    logits = torch.randn(2, 4, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(objective_loss("factorvae", {"gamma": 35.0}, **p, tc_logits=logits,
                                              regularizer_scale=s), rec + s * (kl + 35.0 * O.factorvae_tc(logits)))
    dip = O.dip_regularizer(p["mu"], p["logvar"], 1.0, 10.0, "i")
    torch.testing.assert_close(objective_loss("dip_vae_i", {"lambda_od": 1.0, "lambda_d": 10.0}, **p,
                                              regularizer_scale=s), rec + s * (kl + dip))
    hp = {"c_max": 25.0, "gamma": 1000.0, "iteration_threshold": 100_000.0}
    torch.testing.assert_close(objective_loss("annealed_vae", hp, **p | {"step": 50_000}, regularizer_scale=s),
                               rec + s * 1000.0 * (kl - 12.5).abs())
    # beta-VAE's beta is itself the paper's beta: a scale never applies to it
    torch.testing.assert_close(objective_loss("beta_vae", {"beta": 1e-4}, **p, regularizer_scale=s), rec + 1e-4 * kl)


def test_at_scale_one_the_disentanglement_lib_sum_is_kept_bit_for_bit() -> None:
    p = _parts()
    rec, kl = p["recon"].mean(1), p["kl"].mean(1)
    tc = O.total_correlation_mws(p["z"], p["mu"], p["logvar"], p["dataset_size"])
    assert torch.equal(objective_loss("beta_tcvae", {"beta": 6.0}, **p), rec + kl + 5.0 * tc)


def test_every_objective_is_declared_once_with_a_loss_and_consistent_traits() -> None:
    from sweep.defaults import DATASET_BETA, hparam_context
    from workers.models.objectives import OBJECTIVES, PAIRED

    assert set(PAIRED) == {"slowvae", "ada_gvae", "pcl"}
    p = _parts(S=2, B=4, d=3)
    for name, obj in OBJECTIVES.items():
        assert obj.name == name
        assert (obj.pairs is None) == (obj.paired_terms is None)
        for dataset in DATASET_BETA:  # every default resolves on every dataset, within its own range
            given: dict[str, float] = {}
            for h, hp in obj.hparams.items():
                given[h] = hp.resolve(hparam_context(dataset, given))
                assert hp.allows(given[h]), (name, dataset, h, given[h])
        logits = torch.zeros(2, 4, 2, dtype=torch.float64) if obj.discriminator else None
        loss = obj.loss(given, LossInputs(
            recon=p["recon"], kl=p["kl"], mu=p["mu"], z=p["z"], step=0, dataset_size=1000, logvar=p["logvar"],
            tc_logits=logits))
        assert loss.shape == (2,), name


def test_no_default_rewards_total_correlation_and_synthetic_defaults_are_the_published_ones() -> None:
    from sweep.defaults import hparam_context
    from workers.models.objectives import OBJECTIVES

    tcvae, factor = OBJECTIVES["beta_tcvae"].hparams["beta"], OBJECTIVES["factorvae"].hparams["gamma"]
    assert not tcvae.allows(0.9999) and tcvae.allows(1.0)  # beta < 1 would weigh TC by beta - 1 < 0
    for dataset in ("synth_lin", "synth_nonlin"):
        assert tcvae.resolve(hparam_context(dataset, {})) == 6.0
        assert factor.resolve(hparam_context(dataset, {})) == 35.0
    assert tcvae.resolve(hparam_context("shapes3d", {})) == 32.0
    assert factor.resolve(hparam_context("shapes3d", {})) == 7.0
