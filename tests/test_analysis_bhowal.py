"""Bhowal et al. in the analysis layer: the OD-Score's normalisation, the published tables, the claims."""

import numpy as np
import pandas as pd
import pytest

from analysis.bhowal import OD_NORM, claims, normalised_od_score, tables_markdown, with_normalised_od
from analysis.published import PUBLISHED


def test_normalisation_divides_each_distance_by_its_max_per_dataset_and_epoch():
    df = pd.DataFrame({"dataset": ["a", "a", "b", "a"], "epoch": [5, 5, 5, 0],
                       "od_u": [1.0, 2.0, 4.0, 8.0], "od_sigma": [10.0, 5.0, 1.0, 3.0], "od_v": [1.0, 2.0, 0.5, 7.0]})
    got = normalised_od_score(df)
    # dataset a, epoch 5: maxima 2, 10, 2 -> row 0: (0.5 + 1 + 0.5)/3, row 1: (1 + 0.5 + 1)/3
    np.testing.assert_allclose(got, [2 / 3, 2.5 / 3, 1.0, 1.0])


def test_zero_maximum_and_missing_distances_give_nan():
    df = pd.DataFrame({"dataset": ["a", "a"], "epoch": [1, 1], "od_u": [0.0, 0.0], "od_sigma": [1.0, np.nan],
                       "od_v": [0.0, 0.0]})
    assert normalised_od_score(df).isna().all()
    assert OD_NORM not in with_normalised_od(pd.DataFrame({"dataset": ["a"], "mig": [0.1]}))


def test_published_bhowal_rows_cover_tables_1_2_4_5_6():
    rows = PUBLISHED["bhowal2024"]
    sources = {r.source for r in rows}
    assert sources == {f"Bhowal et al. Table {k}" for k in (1, 2, 4, 5, 6)}
    assert len(rows) == 7 * 4 * 3  # seven metric blocks x four datasets x three models
    t6 = next(r for r in rows if r.source.endswith("6") and r.dataset == "dsprites" and r.model == "vae")
    assert (t6.metric, t6.mean, t6.std) == (OD_NORM, 0.9732, 0.02)


def _study_frame() -> pd.DataFrame:
    # dsprites: MIG rises with the seed while the distances fall, so the normalised OD-Score falls with MIG
    rows = []
    for i, model in enumerate(["vae", "beta_vae", "beta_tcvae"] * 2):
        d = 1.0 / (i + 1)
        rows.append({"dataset": "dsprites", "model": model, "epoch": 4, "epochs": 4, "mig": 0.1 * i,
                     "mig_sup": 0.05 * i, "dto": d, "od_u": d, "od_sigma": 2 * d, "od_v": d,
                     "local_decoder_linear": 0.5, "local_decoder_nonlinear": 0.4,
                     "local_decoder_stoch_jacobian": 0.3, "local_decoder_stoch_nonlinear": 0.2})
    return with_normalised_od(pd.DataFrame(rows))


def test_claims_on_a_study_where_orthogonality_tracks_mig():
    found = dict(claims(_study_frame()))
    key = "dsprites: the OD-Score falls as MIG rises across restarts of all models (Fig. 4)"
    assert found[key].startswith("holds: Spearman ρ = -1.00")
    assert found["dsprites epoch 4: DtO and the OD-Score rank restarts alike"].startswith(
        "measured: Spearman ρ = 1.00")
    assert any(v.startswith("holds: unexplained share 0.4000 vs 0.5000") for v in found.values())


def test_tables_put_ours_beside_the_paper():
    text = tables_markdown(_study_frame(), PUBLISHED["bhowal2024"])
    line = next(x for x in text.splitlines() if x.startswith("| dSprites") and "0.9093" in x)
    assert line.count("n = 2") == 3  # two restarts per model measured, next to the paper's number
    assert "| 3DFaces | — / 0.9002 ± 0.0200 (not measured, n = 0)" in text
    table1 = text.split("`local_decoder_linear`")[1]
    assert "0.5000 ± 0.0000 / 0.9209 (no spread published, n = 2)" in table1


@pytest.mark.parametrize("n", [2, 3])
def test_too_few_restarts_is_inconclusive(n):
    df = _study_frame().iloc[:n]
    found = dict(claims(df))
    assert found["dsprites: the OD-Score falls as MIG rises across restarts of all models (Fig. 4)"].startswith(
        "inconclusive")


def test_compare_on_a_planted_store_prints_the_bhowal_tables(tmp_path) -> None:
    from analysis.reproduction import study_markdown
    from workers.store.write import write_rows

    study = "bhowal2024_cpu"
    rows = []
    for seed in range(3):
        for model, scale in (("vae", 1.0), ("beta_vae", 0.5), ("beta_tcvae", 0.25)):
            # every distance of a model is `scale` × the VAE's: normalised OD = scale (the VAE holds the maxima)
            rows.append(dict(study=study, run_key=f"{model}-{seed}", config_key=model, dataset="dsprites",
                             model=model, seed=seed, epoch=10, epochs=10, status="ok", config={}, mig=0.5 - scale / 2,
                             od_u=2.0 * scale, od_sigma=6.0 * scale, od_v=2.0 * scale, od_score=10 / 3 * scale,
                             dto=scale))
    write_rows(str(tmp_path / study), "checkpoints", rows)
    text = study_markdown(str(tmp_path / study))
    assert "**Bhowal et al. Table 6** — `od_score_norm`" in text
    line = next(x for x in text.splitlines() if x.startswith("| dSprites") and "0.9093" in x)
    assert line.startswith("| dSprites | 0.2500 ± 0.0000 / 0.9093 ± 0.0200 (differs, n = 3) | "
                           "0.5000 ± 0.0000 / 0.9400 ± 0.0200 (differs, n = 3) | "
                           "1.0000 ± 0.0000 / 0.9732 ± 0.0200 (differs, n = 3)")
    assert "holds: Spearman ρ = -1.00" in text


def test_stats_prints_the_normalised_od_score_and_says_how(tmp_path) -> None:
    from analysis.report import stats_text
    from workers.store.views import connect
    from workers.store.write import write_rows

    rows = [dict(study="s", run_key=f"{m}-{seed}", config_key=m, dataset="dsprites", model=m, seed=seed, epoch=5,
                 epochs=5, status="ok", config={}, hparams="{}", mig=0.1 * seed, od_u=k * (seed + 1),
                 od_sigma=2.0 * k * (seed + 1), od_v=k * (seed + 1), dto=1.0)
            for m, k in (("vae", 1.0), ("beta_vae", 0.5)) for seed in range(4)]
    write_rows(str(tmp_path / "s"), "checkpoints", rows)
    text = stats_text(connect(str(tmp_path / "s")), n_boot=0)
    header = next(x for x in text.splitlines() if x.startswith("group"))
    assert "od_score_norm" in header.split()
    # the VAE's seed 3 holds every maximum (4, 8, 4): its group mean is (1 + 2 + 3 + 4) / 4 / 4 = 0.625
    vae_line = next(x for x in text.splitlines() if x.split()[:1] == ["vae"])  # groups are labelled by model
    assert "0.625 ± " in vae_line
    assert "each of od_u, od_sigma, od_v divided by its maximum over this study's restarts" in text
