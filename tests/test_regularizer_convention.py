"""The regulariser convention on the synthetic sets, in training: at their default settings β-TCVAE,
FactorVAE, DIP-VAE-I and DIP-VAE-II keep a latent active for each of the two factors on every seed.

Without the convention their regulariser ignores the dataset's likelihood scale (paper β 1e-4 / 1e-3): on these
sets β-TCVAE then rewards total correlation and FactorVAE's γ·TC dwarfs the reconstruction, and the codes
collapse. The run lengths are the shortest at which every seed had grown both latents when measured: a latent
that is still growing is not yet active, whatever the objective (β-VAE at its default β has seed 1 on Synth.
Lin. at 0 active units after 1,000 steps, and seed 3 on Synth. Non-Lin. with one latent at KL 0.04 after 40
epochs of 5,000 points). FactorVAE's 6 × 1000 discriminator makes its cases cost minutes on a CPU (the Synth.
Lin. one ~6 minutes on 2 idle cores with both threads): slow.
"""

from __future__ import annotations

import os

import pytest

from sweep.spec import validate_study
from workers.train import run_trial

SEEDS = [0, 1, 2, 3]
THREADS = min(2, os.cpu_count() or 1)  # FactorVAE's discriminator matmuls use both of CI's cores
SCALE = {"synth_lin": 1e-4, "synth_nonlin": 1e-3}

# (dataset, model, points, epochs)
CASES = [
    *[("synth_lin", m, 5000, 40) for m in ("beta_tcvae", "dip_vae_i", "dip_vae_ii")],
    *[("synth_nonlin", m, 5000, 80) for m in ("beta_tcvae", "dip_vae_i", "dip_vae_ii")],
    pytest.param("synth_lin", "factorvae", 5000, 40, marks=[pytest.mark.slow, pytest.mark.timeout(3600)]),
    pytest.param("synth_nonlin", "factorvae", 2000, 10, marks=pytest.mark.slow),
]


def _trial(dataset: str, model: str, n: int, epochs: int):  # noqa: ANN202 - a sweep.spec TrialSpec
    study = validate_study({
        "study": "regularizer_convention", "storage": "./unused",
        "grid": {"dataset": [dataset], "model": [model], "seeds": SEEDS},
        "overrides": {dataset: {"n": n, "epochs": epochs}},
        "train": {"seeds_per_trial": len(SEEDS), "checkpoints": [epochs]},
        "eval": {"metrics": ["polarized"], "n_eval": 1000},
        "resources": {"cpu": THREADS, "gpu": 0},
    })
    assert len(study.trials) == 1
    return study.trials[0]


@pytest.mark.parametrize(("dataset", "model", "n", "epochs"), CASES)
def test_default_settings_keep_every_factor_latent_active(dataset: str, model: str, n: int, epochs: int) -> None:
    trial = _trial(dataset, model, n, epochs)
    # the defaults: the dSprites settings, on a regulariser scaled by the dataset's likelihood scale
    assert trial.config.regularizer_scale == SCALE[dataset]
    if model == "beta_tcvae":
        assert trial.config.hparams["beta"] >= 1.0  # below 1 the TC term would be rewarded
    if model == "factorvae":
        assert trial.config.hparams["gamma"] == 35.0
    res = run_trial(trial, study="regularizer_convention", study_uri=None, cpus=THREADS, gpus=0)
    final = sorted((r["seed"], r["active_units"]) for r in res.checkpoint_rows if r["epoch"] == epochs)
    assert final == [(s, 2) for s in SEEDS], f"{model} on {dataset}: (seed, active units) {final}"
