"""Seed-batched networks against per-seed torch.nn references; conv shapes; posteriors; state dicts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from workers.models.networks import CONV_FORMS, conv_form_for
from workers.models.params import init_flat, views
from workers.models.vae import BatchedVAE
from workers.seed_streams import seed_generator
from workers.trial import Arch, Optimizer, RestartConfig


def config(model="beta_vae", kind="mlp", enc=(7, 5), dec=(6,), enc_act="relu", dec_act="tanh", d=3,
           likelihood="gaussian") -> RestartConfig:
    return RestartConfig(dataset="synth_lin", dataset_options={}, model=model, hparams={"beta": 1.0},
                         arch=Arch(kind, tuple(enc), tuple(dec), enc_act, dec_act), latent_dim=d,
                         likelihood=likelihood, optimizer=Optimizer("adam", 1e-3), epochs=1, batch_size=64)


def build(cfg, obs_shape, S=3):
    vae = BatchedVAE(cfg, obs_shape)
    flat = init_flat(vae.layout, [seed_generator(s, "init") for s in range(S)], torch.device("cpu"))
    return vae, flat, views(vae.layout, flat)


def reference_mlp(state, prefix, n_layers, act):
    """nn.Sequential with the seed's weights; `state[...weight]` is (in, out) -> nn.Linear wants (out, in)."""
    mods = []
    for i in range(n_layers):
        w, b = state[f"{prefix}.fc{i}.weight"], state[f"{prefix}.fc{i}.bias"]
        lin = nn.Linear(*w.shape)
        lin.weight.data, lin.bias.data = w.T.clone(), b.clone()
        mods.append(lin)
        if i < n_layers - 1:
            mods.append({"relu": nn.ReLU(), "tanh": nn.Tanh(), "none": nn.Identity()}[act])
    return nn.Sequential(*mods)


def test_mlp_matches_per_seed_reference_with_hidden_nonlinearities_only() -> None:
    vae, flat, p = build(config(), (4,))
    x = torch.randn(3, 10, 4)
    mu, post = vae.encode(p, x)
    z = torch.randn(3, 10, 3)
    out = vae.decode(p, z)
    for s in range(3):
        st = vae.seed_state_dict(flat, s)
        enc = reference_mlp(st, "enc", 3, "relu")
        dec = reference_mlp(st, "dec", 2, "tanh")
        h = enc(x[s])
        torch.testing.assert_close(mu[s], h[:, :3])
        torch.testing.assert_close(post["logvar"][s], h[:, 3:])
        torch.testing.assert_close(out[s], dec(z[s]))


def test_linear_architecture_is_affine_with_biases() -> None:
    vae, flat, p = build(config(kind="linear", d=2), (3,), S=2)
    names = {n: e.shape for n, e in vae.layout.entries.items()}
    assert names == {"enc.fc0.weight": (3, 4), "enc.fc0.bias": (4,), "dec.fc0.weight": (2, 3), "dec.fc0.bias": (3,)}
    z = torch.randn(2, 5, 2)
    st = vae.seed_state_dict(flat, 1)
    torch.testing.assert_close(vae.decode(p, z)[1], z[1] @ st["dec.fc0.weight"] + st["dec.fc0.bias"])


def test_default_init_is_pytorchs_uniform_bound() -> None:
    vae, flat, p = build(config(enc=(200,), dec=(), d=2), (50,), S=1)
    w = vae.seed_state_dict(flat, 0)["enc.fc0.weight"]
    assert w.abs().max() <= 1 / math.sqrt(50) and w.abs().max() > 0.9 / math.sqrt(50)


@pytest.mark.parametrize("form", CONV_FORMS)
@pytest.mark.parametrize("channels", [1, 3])
def test_conv_shapes_and_per_seed_reference(channels: int, form: str) -> None:
    cfg = config(kind="conv", enc=(), dec=(), d=10, likelihood="bernoulli")
    vae, flat, p = build(cfg, (channels, 64, 64), S=2)
    vae.encoder.conv_form = vae.decoder.conv_form = form
    x = torch.rand(2, 3, channels, 64, 64)
    mu, post = vae.encode(p, x)
    assert mu.shape == (2, 3, 10) and post["logvar"].shape == (2, 3, 10)
    z = torch.randn(2, 3, 10)
    out = vae.decode(p, z)
    assert out.shape == (2, 3, channels, 64, 64)
    # seed 1 against torch.nn layers built from its state dict (disentanglement_lib conv_encoder / deconv_decoder)
    st = vae.seed_state_dict(flat, 1)

    def conv(name, c_in, c_out, transpose=False):
        m = (nn.ConvTranspose2d if transpose else nn.Conv2d)(c_in, c_out, 4, 2, 1)
        m.weight.data, m.bias.data = st[f"{name}.weight"].clone(), st[f"{name}.bias"].clone()
        return m

    def dense(name):
        w = st[f"{name}.weight"]
        m = nn.Linear(*w.shape)
        m.weight.data, m.bias.data = w.T.clone(), st[f"{name}.bias"].clone()
        return m

    enc = nn.Sequential(conv("enc.conv1", channels, 32), nn.ReLU(), conv("enc.conv2", 32, 32), nn.ReLU(),
                        conv("enc.conv3", 32, 64), nn.ReLU(), conv("enc.conv4", 64, 64), nn.ReLU(), nn.Flatten(),
                        dense("enc.fc1"), nn.ReLU(), dense("enc.fc2"))
    dec = nn.Sequential(dense("dec.fc1"), nn.ReLU(), dense("dec.fc2"), nn.ReLU(), nn.Unflatten(1, (64, 4, 4)),
                        conv("dec.deconv1", 64, 64, True), nn.ReLU(), conv("dec.deconv2", 64, 32, True), nn.ReLU(),
                        conv("dec.deconv3", 32, 32, True), nn.ReLU(), conv("dec.deconv4", 32, channels, True))
    with torch.no_grad():
        torch.testing.assert_close(mu[1], enc(x[1])[:, :10], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(out[1], dec(z[1]), rtol=1e-4, atol=1e-5)
    view = vae.seed_view(flat, 1)
    assert view.decode(z[1]).shape == (3, channels, 64, 64)
    assert 0 <= float(view.decode(z[1]).min()) and float(view.decode(z[1]).max()) <= 1  # Bernoulli mean


def test_conv_forms_compute_the_same_function_and_gradients() -> None:
    """"grouped" and "per_seed" (networks.CONV_FORMS) are two layouts of one computation: same outputs and
    same parameter gradients for every seed, to float32 rounding (the kernels differ)."""
    cfg = config(kind="conv", enc=(), dec=(), d=5, likelihood="bernoulli")
    vae = BatchedVAE(cfg, (3, 64, 64))
    x = torch.rand(4, 6, 3, 64, 64)
    eps = torch.randn(4, 6, 5)
    got = {}
    for form in CONV_FORMS:
        vae.encoder.conv_form = vae.decoder.conv_form = form
        flat = init_flat(vae.layout, [seed_generator(s, "init") for s in range(4)], torch.device("cpu"))
        flat.requires_grad_()
        terms = vae.terms(views(vae.layout, flat), x, eps, step=0, dataset_size=100)
        (grad,) = torch.autograd.grad(terms.loss.sum(), [flat])
        got[form] = (terms.loss.detach(), terms.mu, grad)
    for a, b in zip(got["grouped"], got["per_seed"], strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    assert conv_form_for(torch.device("cpu")) == "per_seed"
    vae.decoder.conv_form = "winograd"
    with pytest.raises(ValueError, match="conv_form"):
        vae.decode(views(vae.layout, flat.detach()), eps)


def test_conv_refuses_other_image_sizes() -> None:
    with pytest.raises(ValueError, match="64x64"):
        BatchedVAE(config(kind="conv", d=4), (1, 28, 28))


def test_full_covariance_posterior_is_a_cholesky_factor() -> None:
    vae, flat, p = build(config(model="beta_vae_sigma", d=3), (4,))
    assert vae.posterior == "full"
    mu, post = vae.encode(p, torch.randn(3, 6, 4))
    L = post["scale_tril"]
    assert L.shape == (3, 6, 3, 3)
    assert torch.equal(L, torch.tril(L)) and bool((torch.diagonal(L, dim1=-2, dim2=-1) > 0).all())
    # all 3 strictly-lower entries are free parameters (non-zero for a random encoder)
    assert bool((L[..., 1, 0] != 0).all() and (L[..., 2, 0] != 0).all() and (L[..., 2, 1] != 0).all())
    eps = torch.randn(3, 6, 3)
    torch.testing.assert_close(vae.sample(mu, post, eps), mu + torch.einsum("sbij,sbj->sbi", L, eps))


def test_ae_has_a_deterministic_code_and_no_kl() -> None:
    vae, flat, p = build(config(model="ae"), (4,))
    mu, post = vae.encode(p, torch.randn(3, 5, 4))
    assert post == {} and vae.posterior == "none"
    assert torch.equal(vae.sample(mu, post, None), mu)
    assert torch.equal(vae.kl(mu, post), torch.zeros(3, 5))


def test_seed_state_dict_round_trip_and_protocol_shapes() -> None:
    vae, flat, p = build(config(model="beta_vae_sigma", d=2), (4,))
    st = vae.seed_state_dict(flat, 2)
    view = vae.load_seed(st)
    x = torch.randn(9, 4)
    mu, post = view.encode(x)
    assert mu.shape == (9, 2) and post["scale_tril"].shape == (9, 2, 2)
    ref_mu, _ = vae.seed_view(flat, 2).encode(x)
    torch.testing.assert_close(mu, ref_mu, rtol=0, atol=0)
    assert view.decode(mu).shape == (9, 4)
    bad = dict(st)
    bad["dec.fc0.weight"] = torch.zeros(1, 1)
    with pytest.raises(ValueError, match="dec.fc0.weight"):
        vae.load_seed(bad)


def test_cpu_tanh_matches_torch_tanh_in_value_and_gradient() -> None:
    from workers.models.networks import _tanh

    x = torch.linspace(-20, 20, 100_001, requires_grad=True)
    y = _tanh(x)
    ref = torch.tanh(x.detach().double())
    assert (y.double() - ref).abs().max() < 3e-7
    y.sum().backward()
    assert (x.grad.double() - (1 - ref**2)).abs().max() < 5e-7


def test_cpu_tanh_works_under_torch_func_transforms() -> None:
    # DtO differentiates the decoder with torch.func (jacfwd inside vmap); the fast tanh must support it.
    from workers.models.networks import _tanh

    W = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    z = torch.randn(7, 3, generator=torch.Generator().manual_seed(1))

    def ours(v):
        return _tanh(v @ W)

    def ref(v):
        return torch.tanh(v @ W)

    for jac in (torch.func.jacfwd, torch.func.jacrev):
        torch.testing.assert_close(torch.func.vmap(jac(ours))(z), torch.func.vmap(jac(ref))(z), rtol=0, atol=1e-6)


def test_cpu_tanh_frees_its_output_without_the_cycle_collector() -> None:
    # A training step's activations must be freed by reference counting alone: a cycle through the autograd
    # context would keep every step's output alive until Python's cycle collector happens to run.
    import gc
    import weakref

    from workers.models.networks import _tanh

    x = torch.randn(64, 32, requires_grad=True)
    gc.disable()
    try:
        y = _tanh(x)
        ref = weakref.ref(y)
        y.sum().backward()
        del y
        assert ref() is None
    finally:
        gc.enable()
