"""Measured-vs-published tables: planted stores with known means give known verdicts and claims."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.published import PUBLISHED
from analysis.reproduction import claims, compare, load_rows, study_markdown
from workers.store.write import write_rows


def _row(study: str, dataset: str, model: str, seed: int, epoch: int, **metrics) -> dict:
    ratio = metrics.pop("ratio", 2.0)
    return dict(study=study, run_key=f"{dataset}-{model}-{seed}-{ratio}", config_key="c",
                dataset=dataset, model=model, seed=seed, epoch=epoch, epochs=10, status="ok",
                config={"dataset_options": {"ratio": ratio}}, **metrics)


def test_table3_verdicts_and_ordering_claims(tmp_path: Path) -> None:
    study = "rolinek2019_table3_cpu"
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(10):
        # beta-VAE exactly at the paper's numbers (agrees); AE far from them (differs)
        rows.append(_row(study, "synth_lin", "beta_vae", seed, 10, dto=0.0, ds=0.99))
        rows.append(_row(study, "synth_lin", "ae", seed, 10, dto=1.5 + 0.01 * rng.standard_normal(), ds=0.1))
        for model in ("beta_vae", "ae"):
            rows.append(_row(study, "synth_lin", model, seed, 0, dto=0.8, ds=0.0))
    write_rows(str(tmp_path / study), "checkpoints", rows)
    df = load_rows(str(tmp_path / study))
    by = {(c.row.model, c.row.metric, c.row.epoch): c for c in compare(df, study) if c.row.dataset == "synth_lin"}
    assert by[("beta_vae", "dto", "final")].verdict == "agrees"
    assert by[("beta_vae", "ds", "final")].n == 10
    assert by[("ae", "dto", "final")].verdict == "differs"
    assert by[("beta_vae", "dto", "0")].verdict == "agrees"  # 0.8 vs 0.79 ± 0.21
    assert by[("beta_vae", "dto", "0")].n == 10
    assert by[("beta_vae_sigma", "dto", "final")].verdict == "not measured"
    verdicts = dict(claims(df, study))
    assert verdicts["synth_lin: beta-VAE DtO ≈ 0 and DS ≈ 1"].startswith("holds")
    assert verdicts["synth_lin: beta-VAE DtO below VAE, AE, beta-VAE_Sigma and the random decoder"].startswith(
        "holds")
    assert "| thesis Table 3.3" in study_markdown(str(tmp_path / study))


def test_degenerate_claim_detects_a_non_monotone_trend(tmp_path: Path) -> None:
    study = "rolinek2019_degenerate"
    rows = [_row(study, "synth_lin", "beta_vae", s, 10, ratio=r, dto=d, ds=1 - d)
            for s in range(3) for r, d in ((1.0, 0.5), (1.2, 0.6), (1.5, 0.0))]
    write_rows(str(tmp_path / study), "checkpoints", rows)
    df = load_rows(str(tmp_path / study))
    (claim, result), = claims(df, study)
    assert result.startswith("fails")
    ratio_rows = [c for c in compare(df, study) if c.row.metric == "dto"]
    assert [c.n for c in ratio_rows] == [3, 3, 3]


def test_every_published_row_names_a_stored_column() -> None:
    from workers.store.schema import CHECKPOINT_SCHEMA

    for rows in PUBLISHED.values():
        for p in rows:
            assert p.metric in CHECKPOINT_SCHEMA.names


def test_zietlow_claim_compares_every_vae_with_the_ae(tmp_path: Path) -> None:
    study = "zietlow2021_restarts_cpu"
    rows = [_row(study, ds, model, s, 10, mig=m) for s in range(3)
            for ds, ms in (("dsprites", {"ae": 0.1, "beta_vae": 0.3, "factorvae": 0.2}),
                           ("shapes3d", {"ae": 0.2, "beta_vae": 0.3, "factorvae": 0.1}))
            for model, m in ms.items()]
    write_rows(str(tmp_path / study), "checkpoints", rows)
    verdicts = dict(claims(load_rows(str(tmp_path / study)), study))
    assert verdicts["dsprites: every disentangling VAE's MIG above the AE's (thesis Table 4.2, original data)"
                    ].startswith("holds")
    assert verdicts["shapes3d: every disentangling VAE's MIG above the AE's (thesis Table 4.2, original data)"
                    ].startswith("fails")
