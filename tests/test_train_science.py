"""Science check on CPU (Rolínek et al. 2019, Table 2, Synth. Lin.): β-VAE's decoder is the orthogonal one.

synth_lin with the paper's architecture and optimiser (linear encoder/decoder, latent 2, Adam 1e-3, batch
64), shortened to the quickstart's budget: 10,000 points, 60 epochs (7,500 steps), 8 seeds per model
trained as one block; per-seed DtO printed (run with -s).

- At the quickstart's β = 0.1 the β-VAE reaches DtO < 0.05 on most seeds; the AE and the full-covariance
  β-VAE_Σ (no diagonal posterior to break the rotation symmetry) do not. Measured here: β-VAE 7/8 seeds
  (median 0.008), AE 0/8 (median 0.41), β-VAE_Σ 0/8 (median 0.54).
- At the paper's β = 1e-4 this budget is marginal: 5/8 seeds below 0.05 (median 0.035) but 5/12 on 12
  seeds, and β-VAE DtO keeps drifting per seed (0.01 to 0.8) at 100–200 epochs too — a plain single-seed
  torch.nn + torch.optim.Adam reference drifts the same way, so it is the tiny β, not the vectorised
  trainer. Only the paper's ordering is asserted there: β-VAE decoders clearly more orthogonal than both
  controls (β-VAE_Σ 1/8, median 0.26).
"""

from __future__ import annotations

import functools
import statistics

import pytest
from trainhelpers import make_trial

from workers.train import run_trial

pytestmark = pytest.mark.slow

SEEDS = list(range(8))


@functools.cache
def final_dto(model: str, beta: float) -> tuple[float, ...]:
    trial = make_trial(SEEDS, model=model, hparams={} if model == "ae" else {"beta": beta}, epochs=60,
                       checkpoints=[60], trace_every=500, metrics=["dto"],
                       dataset_options={"n": 10_000, "ratio": 2.0, "data_seed": 0})
    res = run_trial(trial, study="science", study_uri=None, cpus=1, gpus=0)
    rows = sorted(res.checkpoint_rows, key=lambda r: r["seed"])
    assert all(r["status"] == "ok" for r in rows)
    dto = tuple(r["dto"] for r in rows)
    print(f"\n{model:>15} beta={beta:g}: DtO per seed {[round(v, 3) for v in dto]}; "
          f"{sum(v < 0.05 for v in dto)}/{len(dto)} below 0.05, median {statistics.median(dto):.3f}")
    return dto


def below(dto: tuple[float, ...]) -> int:
    return sum(v < 0.05 for v in dto)


def test_beta_vae_reaches_dto_below_005_on_most_seeds_ae_and_full_covariance_do_not() -> None:
    assert below(final_dto("beta_vae", 0.1)) > 0.75 * len(SEEDS)
    assert below(final_dto("ae", 0.0)) <= len(SEEDS) / 4
    assert below(final_dto("beta_vae_sigma", 0.1)) <= len(SEEDS) / 4


def test_at_the_papers_beta_the_ordering_already_holds() -> None:
    beta_vae, ae, sigma = final_dto("beta_vae", 1e-4), final_dto("ae", 0.0), final_dto("beta_vae_sigma", 1e-4)
    assert statistics.median(beta_vae) < 0.5 * min(statistics.median(ae), statistics.median(sigma))
    assert below(beta_vae) >= 2 * max(below(ae), below(sigma), 1)
