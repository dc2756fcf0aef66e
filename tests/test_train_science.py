"""Science check on CPU (Rolínek et al. 2019, Table 2, Synth. Lin.): β-VAE's decoder is the orthogonal one.

Paper settings for synth_lin (linear encoder/decoder, latent 2, Adam 1e-3, batch 64, β = 1e-4) shortened
to the quickstart's budget: 10,000 points, 60 epochs (7,500 steps), 12 seeds per model trained as one
block; per-seed DtO printed (run with -s).

Measured on this machine (per seed, 12 seeds): β-VAE 5/12 below 0.05, median 0.07; AE 1/12, median 0.42;
β-VAE_Σ 1/12, median 0.39. The issue's "DtO < 0.05 on most seeds" for β-VAE does NOT hold at this budget,
nor at 100–200 epochs (β-VAE DtO keeps drifting between 0.01 and 0.8 per seed while the loss converges),
and a plain single-seed torch.nn + torch.optim.Adam reference shows the same drift, so it is the
shortened schedule / the tiny β, not the vectorised trainer. What is asserted is the paper's ordering:
β-VAE has clearly more orthogonal decoders than both controls.
"""

from __future__ import annotations

import statistics

import pytest
from trainhelpers import make_trial

from workers.train import run_trial

pytestmark = pytest.mark.slow

SEEDS = list(range(12))


def final_dto(model: str) -> list[float]:
    trial = make_trial(SEEDS, model=model, hparams={} if model == "ae" else {"beta": 1e-4}, epochs=60,
                       checkpoints=[60], trace_every=500, metrics=["dto"],
                       dataset_options={"n": 10_000, "ratio": 2.0, "data_seed": 0})
    res = run_trial(trial, study="science", study_uri=None, cpus=1, gpus=0)
    rows = sorted(res.checkpoint_rows, key=lambda r: r["seed"])
    assert all(r["status"] == "ok" for r in rows)
    dto = [r["dto"] for r in rows]
    print(f"{model:>15}: DtO per seed {[round(v, 3) for v in dto]}; {sum(v < 0.05 for v in dto)}/{len(dto)} "
          f"below 0.05, median {statistics.median(dto):.3f} ({res.train_seconds:.0f} s training)")
    return dto


def test_beta_vae_decoders_are_more_orthogonal_than_ae_and_full_covariance() -> None:
    dto = {m: final_dto(m) for m in ("beta_vae", "ae", "beta_vae_sigma")}
    below = {m: sum(v < 0.05 for v in d) for m, d in dto.items()}
    median = {m: statistics.median(d) for m, d in dto.items()}
    assert below["beta_vae"] >= 2 * max(below["ae"], below["beta_vae_sigma"], 1)
    assert median["beta_vae"] < 0.5 * min(median["ae"], median["beta_vae_sigma"])
    assert below["ae"] <= len(SEEDS) / 4 and below["beta_vae_sigma"] <= len(SEEDS) / 4
