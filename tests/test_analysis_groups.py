"""Groups are configurations: a study whose restarts differ only by a dataset option gives one group per
option value, labelled by that option, in `stats`, the figures and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.figures import draw_figures
from analysis.frames import restarts
from analysis.groups import config_fields, config_frame, group_labels
from analysis.report import build_report
from sweep.cli import main as cli
from sweep.spec import validate_study
from testing.synthetic_store import checkpoint_row
from workers.store.views import connect
from workers.store.write import write_rows

SEEDS = 8


@pytest.fixture(scope="module")
def noise_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """synth_lin × (beta_vae, ae) × noise [null, 0.1], 8 seeds each, real configs from the spec; MIG is
    planted so that noise halves it: pooling the two variants would give one group per model with a
    spread no configuration has."""
    tmp = tmp_path_factory.mktemp("groups")
    spec = {"study": "noisy", "storage": str(tmp), "train": {"epochs": 10},
            "grid": {"dataset": "synth_lin", "model": ["beta_vae", "ae"], "seeds": SEEDS},
            "overrides": {"synth_lin": {"noise": [None, 0.1]}}}
    study = validate_study(spec)
    study_dir = tmp / "noisy"
    study_dir.mkdir()
    (study_dir / "study.yaml").write_text(json.dumps(spec))
    rows = []
    for r in study.restarts:
        cfg = r.config.to_dict()
        noisy = cfg["dataset_options"].get("noise") is not None
        mig = (0.4 if noisy else 0.8) + 0.01 * r.seed
        for e in (0, 10):
            rows.append(checkpoint_row(r.run_key, e, config_key=r.config_key, seed=r.seed, model=cfg["model"],
                                       beta=cfg["hparams"].get("beta"), study="noisy", config=cfg, epochs=10,
                                       mig=mig * e / 10, dto=1 - mig * e / 10, active_units=2,
                                       mig_per_factor=[mig, mig]))
    write_rows(str(study_dir), "checkpoints", rows)
    return study_dir


def test_stats_json_has_two_groups_per_model_labelled_by_noise(noise_study: Path, capsys) -> None:
    assert cli(["stats", str(noise_study), "--format", "json", "--bootstrap", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    labels = sorted(g["group"] for g in out["groups"])
    assert labels == ["ae · noise=0.1", "ae · noise=none", "beta_vae · noise=0.1", "beta_vae · noise=none"]
    by = {g["group"]: g for g in out["groups"]}
    assert all(g["n"] == SEEDS for g in out["groups"])
    assert by["beta_vae · noise=0.1"]["mig_mean"] == pytest.approx(0.4 + 0.01 * np.mean(range(SEEDS)))
    assert by["beta_vae · noise=none"]["mig_mean"] == pytest.approx(0.8 + 0.01 * np.mean(range(SEEDS)))
    assert {g["model"] for g in out["groups"]} == {"beta_vae", "ae"}
    assert len({g["config_key"] for g in out["groups"]}) == 4
    splits = {s["group"]: s for s in out["restart_statistics"]}
    assert set(splits) == set(labels) and all(s["n"] == SEEDS for s in splits.values())
    assert {c["group"] for c in out["correlations"]} == {*labels, "(pooled)"}


def test_figures_draw_one_panel_per_configuration_and_leave_out_empty_ones(noise_study: Path) -> None:
    con = connect(str(noise_study))
    runs = restarts(con)
    assert set(runs["group"]) == {"ae · noise=0.1", "ae · noise=none", "beta_vae · noise=0.1",
                                  "beta_vae · noise=none"}
    figs, left_out = draw_figures(con, str(noise_study), runs)
    assert "hist_mig" in figs and "per_factor_mig" in figs
    # nothing recorded for DS, one β only, no saved models: those figures are left out, each with its reason
    assert {"hist_ds", "beta_line_search", "violins_mig_over_beta", "traversals_best_worst"} <= set(left_out)
    assert "no values of ds" in left_out["hist_ds"]
    assert not set(figs) & set(left_out)
    html = build_report(con, str(noise_study), n_boot=0)
    assert "beta_vae · noise=0.1" in html and "Left out (nothing to draw): " in html
    assert html.count("<img class='figure'") == len(figs)


def test_submit_summary_has_a_row_per_configuration(noise_study: Path) -> None:
    from analysis.summary import final_summary

    lines = final_summary(str(noise_study)).splitlines()
    rows = [ln.split()[:3] for ln in lines if ln.startswith("synth_lin")]
    assert rows == [["synth_lin", "ae", "noise=0.1"], ["synth_lin", "ae", "noise=none"],
                    ["synth_lin", "beta_vae", "noise=0.1"], ["synth_lin", "beta_vae", "noise=none"]]


def test_labels_name_only_the_fields_that_differ() -> None:
    base = {"dataset": "synth_lin", "model": "beta_vae", "hparams": {"beta": 1e-3}, "latent_dim": 2,
            "dataset_options": {"n": 10000, "perturbation": None}, "optimizer": {"name": "adam", "lr": 1e-3},
            "arch": {"kind": "linear", "encoder": [], "decoder": []}}
    variants = [base, {**base, "dataset_options": {"n": 10000, "perturbation": "/r/perturbations/lin_e0.1"}},
                {**base, "optimizer": {"name": "adam", "lr": 1e-4}},
                {**base, "dataset": "synth_nonlin"}]
    configs = config_frame((("s", f"k{i}", config_fields(v)) for i, v in enumerate(variants)))
    assert group_labels(configs).tolist() == [
        "synth_lin · beta_vae · perturbation=none · lr=0.001",
        "synth_lin · beta_vae · perturbation=lin_e0.1 · lr=0.001",
        "synth_lin · beta_vae · perturbation=none · lr=0.0001", "synth_nonlin · beta_vae"]
    # a hyperparameter of one model does not label another model's groups
    ae = {**base, "model": "ae", "hparams": {}}
    configs = config_frame((("s", f"k{i}", config_fields(v)) for i, v in enumerate(
        [base, {**base, "hparams": {"beta": 1e-2}}, ae])))
    assert group_labels(configs).tolist() == ["beta_vae · beta=0.001", "beta_vae · beta=0.01", "ae"]
    # rows written without a config: the identity columns; distinct keys never share a label
    bare = config_frame([("s", "aaaaaaaaaa", config_fields(None, dataset="d", model="m")),
                         ("s", "bbbbbbbbbb", config_fields(None, dataset="d", model="m"))])
    assert group_labels(bare).tolist() == ["m · aaaaaaaa", "m · bbbbbbbb"]
