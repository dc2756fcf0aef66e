"""Measured-vs-published tables: planted stores with known means give known verdicts and claims."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.published import PUBLISHED
from analysis.reproduction import claims, compare, load_rows, paper_studies, study_markdown
from workers.store.write import write_rows


def _row(study: str, dataset: str, model: str, seed: int, epoch: int, **metrics) -> dict:
    ratio = metrics.pop("ratio", 2.0)
    return dict(study=study, run_key=f"{dataset}-{model}-{seed}-{ratio}", config_key=f"{dataset}-{model}-{ratio}",
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
    from analysis.published import DERIVED_COLUMNS
    from workers.store.schema import CHECKPOINT_SCHEMA

    for rows in PUBLISHED.values():
        for p in rows:
            assert p.metric in CHECKPOINT_SCHEMA.names or set(DERIVED_COLUMNS[p.metric]) <= set(CHECKPOINT_SCHEMA.names)


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


SEEDS = 10
OPTS = {"orig": {}, "mod": {"perturbation": "/p/dsprites"}, "noise": {"noise": 0.1}}


def _variant_rows(study: str, mig: dict, collapsed: set = frozenset(), opts: dict = OPTS) -> list[dict]:
    """Final rows of (dataset, model) x variant x SEEDS seeds: MIG = the planted value + 0.001·seed (the same
    seed offset in every variant, so a variant with the same planted value has zero paired differences);
    (dataset, model, variant, seed) in `collapsed` keeps 1 active unit (of 10 otherwise)."""
    rows = []
    for (ds, model), values in mig.items():
        for variant, m in zip(opts, values, strict=True):
            for seed in range(SEEDS):
                rows.append(dict(study=study, run_key=f"{ds}-{model}-{variant}-{seed}",
                                 config_key=f"{ds}-{model}-{variant}", dataset=ds, model=model, seed=seed, epoch=10,
                                 epochs=10, status="ok", config={"dataset_options": opts[variant]},
                                 active_units=1 if (ds, model, variant, seed) in collapsed else 10,
                                 mig=m + 0.001 * seed))
    return rows


# planted MIG: beta-VAE at the paper's orig/mod numbers; the AE unchanged by the modification; on Shapes3D the
# beta-VAE keeps its MIG under noise but the TC-VAE loses more to noise than to the modification
MIG = {("dsprites", "beta_vae"): (0.23, 0.07, 0.14), ("dsprites", "ae"): (0.09, 0.09, 0.09),
       ("shapes3d", "beta_vae"): (0.60, 0.09, 0.61), ("shapes3d", "beta_tcvae"): (0.58, 0.24, 0.20)}


def test_perturbed_tables_side_by_side_and_paired_claims(tmp_path: Path) -> None:
    study = "zietlow2021_perturbed_cpu"
    rows = _variant_rows(study, MIG, collapsed={("dsprites", "beta_vae", "orig", 0)})
    write_rows(str(tmp_path / study), "checkpoints", rows)
    df = load_rows(str(tmp_path / study))
    assert set(df["variant"]) == {"orig", "mod", "noise"}
    by = {(c.row.dataset, c.row.model, c.row.variant): c for c in compare(df, study) if c.row.metric == "mig"}
    assert by[("dsprites", "beta_vae", "mod")].verdict == "agrees" and by[("dsprites", "beta_vae", "mod")].n == SEEDS
    assert by[("dsprites", "beta_vae", "mod")].group == "dsprites · beta_vae · noise=none · perturbation=dsprites"
    assert by[("dsprites", "beta_vae", "orig")].n == SEEDS and by[("dsprites", "slowvae", "orig")].n == 0
    verdicts = dict(claims(df, study))
    drop = verdicts["dsprites, perturbation=dsprites: every VAE's MIG drops on the modified data"]
    # seed 0's original restart collapsed: it and its pair are left out, 9 pairs remain, all dropping
    assert drop.startswith("holds") and "9 pairs" in drop and "1 collapsed restarts excluded" in drop
    assert f"Wilcoxon p = {2.0 ** -9:.3g}" in drop
    ae = verdicts["dsprites, perturbation=dsprites: the AE's MIG drops less than every VAE's (ae)"]
    assert ae.startswith("holds") and "drop 0.16 vs 0.00" in ae
    assert verdicts["shapes3d, perturbation=dsprites: every VAE's MIG drops on the modified data"].startswith("holds")
    noise = verdicts["shapes3d: the modification (perturbation=dsprites) lowers every VAE's MIG more than noise "
                     "(noise=0.1)"]
    assert noise.startswith("fails") and "beta_vae noise 0.61 vs mod. 0.09" in noise  # beta-TCVAE: 0.20 vs 0.24
    text = study_markdown(str(tmp_path / study))
    assert "| configuration | orig. | mod. | noise |" in text and "**thesis Table 4.2, dsprites** (mig" in text


def test_a_renamed_study_is_recognised_by_what_it_holds(tmp_path: Path) -> None:
    rows = _variant_rows("my_variants", MIG)
    write_rows(str(tmp_path / "my_variants"), "checkpoints", rows)
    text = study_markdown(str(tmp_path / "my_variants"))
    assert "No published numbers registered" not in text
    assert "**thesis Table 4.2, dsprites** (mig" in text and "| claim | on this data |" in text
    assert "every VAE's MIG drops on the modified data | holds" in text
    # Table 3.3's datasets and models under another name
    rows = [_row("mine", "synth_lin", m, s, 10, dto=d, ds=1 - d) for s in range(3)
            for m, d in (("beta_vae", 0.0), ("ae", 0.4))]
    noisy = [{**r, "run_key": r["run_key"] + "n", "config_key": r["config_key"] + "n", "dto": 5.0,
              "config": {"dataset_options": {"ratio": 2.0, "noise": 0.5}}} for r in rows]
    write_rows(str(tmp_path / "mine"), "checkpoints", rows + noisy)
    df = load_rows(str(tmp_path / "mine"))
    assert paper_studies(df, "mine") == ["zietlow2021_perturbed", "rolinek2019_table3"]
    verdicts = dict(claims(df, "mine"))  # the noisy restarts (DtO 5) are not pooled into Table 3.3's claims
    assert verdicts["synth_lin: beta-VAE DtO below VAE, AE, beta-VAE_Sigma and the random decoder"] == (
        "holds: beta-VAE 0.00 vs ae 0.40")
    assert "| thesis Table 3.3 / CVPR Table 2 | synth_lin | beta_vae |" in study_markdown(str(tmp_path / "mine"))
    assert all(c.row.dataset == "synth_lin" for c in compare(df, "mine"))  # datasets it does not hold: left out
    # a study that holds none of the papers' setups
    write_rows(str(tmp_path / "other"), "checkpoints", [_row("other", "synth_nonlin", "vae", s, 10, dto=0.1)
                                                        for s in range(3)])
    assert "No published numbers registered" in study_markdown(str(tmp_path / "other"))


def test_each_perturbation_is_its_own_claim_and_pairs_need_common_seeds(tmp_path: Path) -> None:
    from workers.data.perturbation_folder import FORMAT, META_FILE

    for name, eps in (("lin_e0.05", 0.05), ("lin_e0.1", 0.1)):  # what the claim on ε reads of a folder
        (tmp_path / "p" / name).mkdir(parents=True)
        (tmp_path / "p" / name / META_FILE).write_text(f"format: {FORMAT}\nepsilon: {eps}\n")
    opts = {"orig": {}, "small": {"perturbation": str(tmp_path / "p" / "lin_e0.05")},
            "large": {"perturbation": str(tmp_path / "p" / "lin_e0.1")}, "noise": {"noise": 0.5}}
    # the larger epsilon drops MIG, the smaller one does not (identical values: no pair differs)
    mig = {("synth_lin", "beta_vae"): (0.9, 0.9, 0.2, 0.5), ("synth_lin", "ae"): (0.3, 0.3, 0.3, 0.1)}
    rows = [r for r in _variant_rows("chain", mig, opts=opts) if not (r["config_key"].endswith("large")
                                                                      and r["seed"] >= 8)]
    write_rows(str(tmp_path / "chain"), "checkpoints", rows)
    verdicts = dict(claims(load_rows(str(tmp_path / "chain")), "chain"))
    small = verdicts["synth_lin, perturbation=lin_e0.05: every VAE's MIG drops on the modified data"]
    large = verdicts["synth_lin, perturbation=lin_e0.1: every VAE's MIG drops on the modified data"]
    assert small.startswith("fails") and "Wilcoxon p = 1" in small
    assert large.startswith("holds") and "8 pairs" in large  # seeds 8, 9 lack the large-ε restart
    assert verdicts["synth_lin: the modification (perturbation=lin_e0.1) lowers every VAE's MIG more than noise "
                    "(noise=0.5)"].startswith("holds")
    eps = verdicts["synth_lin: every VAE's MIG drops less at the smaller ε (perturbation=lin_e0.05, ε = 0.05) than "
                   "at the larger (perturbation=lin_e0.1, ε = 0.1)"]
    assert eps.startswith("holds") and "beta_vae 0.90 vs 0.20" in eps and "8 pairs" in eps
    # folders that cannot be read from here: the claim says so instead of guessing
    for name in ("lin_e0.05", "lin_e0.1"):
        (tmp_path / "p" / name / META_FILE).unlink()
    verdicts = dict(claims(load_rows(str(tmp_path / "chain")), "chain"))
    assert verdicts["synth_lin: every VAE's MIG drops less at the smaller ε"].startswith("not tested")
