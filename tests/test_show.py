"""`orthosweep show`: any stored restart as reconstructions, prior samples and traversals; the report's link."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from trainhelpers import TinyImages, make_trial

from analysis.restart import SavedRestart
from analysis.show import (
    FIGURES,
    STEPS,
    active_latents,
    grid_codes,
    restart_views,
    sweep_values,
    traversal_codes,
)
from workers.models.params import init_flat
from workers.models.vae import BatchedVAE
from workers.train import run_trial

PNG = b"\x89PNG\r\n\x1a\n"


def test_active_latents_follow_the_posterior_variance_or_the_spread_of_the_means() -> None:
    rng = np.random.default_rng(0)
    mu = rng.standard_normal((500, 3)) * np.array([2.0, 0.1, 1.0])
    logvar = np.log(np.broadcast_to([0.01, 1.0, 0.5], (500, 3)))
    active, kl = active_latents(mu, {"logvar": logvar})
    assert active.tolist() == [True, False, True]  # E sigma^2 < 0.8
    expected = 0.5 * ((mu**2).mean(0) + np.exp(logvar[0]) - logvar[0] - 1)
    np.testing.assert_allclose(kl, expected)
    L = np.broadcast_to(np.diag(np.sqrt([0.01, 1.0, 0.5])), (500, 3, 3))
    active_full, kl_full = active_latents(mu, {"scale_tril": L})
    assert active_full.tolist() == active.tolist()
    np.testing.assert_allclose(kl_full, kl)
    active_ae, spread = active_latents(mu, {})  # no posterior: std of mu > 0.5
    assert active_ae.tolist() == [True, False, True]
    np.testing.assert_allclose(spread, mu.std(0))


def test_traversals_move_one_latent_from_each_encoded_point() -> None:
    z0 = np.array([[0.3, -1.0, 2.0], [1.0, 0.5, -0.5]])
    values = sweep_values(np.zeros((4, 3)), prior=True, steps=5)
    np.testing.assert_allclose(values[1], [-2.5, -1.25, 0, 1.25, 2.5])
    z = traversal_codes(z0, [2, 0], values)
    assert z.shape == (2, 2, 5, 3)
    for p in range(2):
        for i, j in enumerate([2, 0]):
            np.testing.assert_array_equal(z[p, i, :, j], values[j])
            others = [k for k in range(3) if k != j]
            np.testing.assert_array_equal(z[p, i][:, others], np.broadcast_to(z0[p, others], (5, 2)))
    g = grid_codes(z0[0], (0, 2), values)
    assert g.shape == (5, 5, 3)
    np.testing.assert_array_equal(g[:, :, 1], -1.0)
    np.testing.assert_array_equal(g[3, 1, [0, 2]], [values[0, 3], values[2, 1]])
    ae = sweep_values(np.linspace([0, 10], [1, 20], 101), prior=False, steps=3)  # no prior: 2nd..98th pct
    np.testing.assert_allclose(ae, [[0.02, 0.5, 0.98], [10.2, 15.0, 19.8]])


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG)
    return Image.open(io.BytesIO(data)).size


def test_views_of_an_image_model() -> None:
    """A conv beta-VAE on 64x64 images (untrained): four pictures and a GIF with one frame per step, back and forth."""
    trial = make_trial([0], arch="conv", hparams={"beta": 4.0}, latent_dim=3, likelihood="bernoulli",
                       dataset="tiny_images", dataset_options={})
    vae = BatchedVAE(trial.config, (1, 64, 64))
    flat = init_flat(vae.layout, [torch.Generator().manual_seed(0)], torch.device("cpu"))
    data = TinyImages(1)
    data.split_indices = lambda part: np.arange(150, 200) if part == "test" else np.arange(150)  # type: ignore
    restart = SavedRestart("mem://", "k" * 16, 0, {}, {"model": "beta_vae", "dataset": "tiny_images"},
                           vae.seed_view(flat, 0), data)
    views = restart_views(restart, steps=STEPS)
    assert [f"{f}.png" for f in FIGURES] + ["traversals.gif"] == list(views)
    for f in FIGURES:
        w, h = _png_size(views[f"{f}.png"])
        assert w > 300 and h > 150, (f, w, h)
    gif = Image.open(io.BytesIO(views["traversals.gif"]))
    assert gif.format == "GIF" and gif.n_frames == 2 * STEPS - 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    study_dir = tmp_path_factory.mktemp("show") / "show"
    trial = make_trial([0, 1, 2], epochs=1, n=512, metrics=["dto", "mig", "polarized"])
    run_trial(trial, study="show", study_uri=str(study_dir))
    return study_dir, list(trial.run_keys)


def test_show_command_writes_every_view_of_any_restart(trained, capsys) -> None:
    from sweep.cli import main

    study_dir, keys = trained
    for key in keys[1:]:
        assert main(["show", str(study_dir), key[:8], "--epoch", "0"]) == 0
        folder = study_dir / "show" / key / "e0"
        assert sorted(p.name for p in folder.iterdir()) == sorted([f"{f}.png" for f in FIGURES] + ["traversals.gif"])
        assert str(folder / "traversal_2d.png") in capsys.readouterr().out
    out = study_dir / "elsewhere"
    assert main(["show", str(study_dir), keys[0], "--out", str(out)]) == 0
    assert (out / "traversals_1d.png").stat().st_size > 5_000
    assert main(["show", str(study_dir), "nope"]) == 2
    assert "no restart 'nope'" in capsys.readouterr().err


def test_report_opens_the_best_and_worst_restart(trained) -> None:
    from analysis.frames import restarts
    from analysis.report import restart_views_section
    from workers.store.views import connect

    study_dir, keys = trained
    con = connect(str(study_dir))
    runs = restarts(con)
    html = "\n".join(restart_views_section(con, runs, str(study_dir)))
    best, worst = runs.sort_values("mig").run_key.iloc[[-1, 0]]
    assert f"<a href='#restart-{best}'>best: {best}</a>" in html and f"id='restart-{worst}'" in html
    assert html.count("data:image/png;base64,") == 8 and html.count("data:image/gif;base64,") == 2
    assert f"orthosweep show {study_dir} {best} --epoch 1" in html
