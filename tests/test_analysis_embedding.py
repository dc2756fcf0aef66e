"""Cartesian vs polar restarts in the analysis: `stats --split polar`, the stats table, the report section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.report import build_report
from analysis.stats import DISENTANGLED, ENTANGLED, MIDDLE, embedding_table, restart_statistics, split_restarts
from analysis.synthetic import checkpoint_row
from sweep.cli import main as cli
from workers.store.views import connect
from workers.store.write import write_rows

POLAR = {"a3", "a5", "a7"}  # group a: three polar restarts (low MIG), five cartesian; group b: no embedding


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    study_dir = tmp_path_factory.mktemp("emb") / "emb"
    rows = []
    for g, beta in (("a", 1e-3), ("b", 1e-2)):
        for s in range(8):
            rk = f"{g}{s}"
            polar = rk in POLAR
            emb = {} if g == "b" else {
                "polar_pairs": 1 if polar else 0, "polar_fraction": 1.0 if polar else 0.0,
                "embedding_residual_cartesian": 0.5 if polar else 0.01, "embedding_residual_polar": 0.02 if polar
                else 0.6, "embedding_per_pair": [-0.48] if polar else [0.59]}
            rows.append(checkpoint_row(rk, 10, config_key=f"cfg{g}", seed=s, beta=beta, epochs=10,
                                       mig=(0.1 if polar else 0.7) + 0.01 * s, dto=0.3, **emb))
    write_rows(str(study_dir), "checkpoints", rows)
    return study_dir


def test_split_restarts_polar_labels_cartesian_as_the_disentangled_side() -> None:
    labels = split_restarts(np.array([0.0, 0.5, np.nan, 1 / 15, 0.0]), "polar")
    assert labels.tolist() == [DISENTANGLED, ENTANGLED, MIDDLE, ENTANGLED, DISENTANGLED]
    with pytest.raises(ValueError, match="allowed: topk, threshold, mixture, polar"):
        split_restarts(np.zeros(3), "poler")  # type: ignore[arg-type]


def test_restart_statistics_split_by_embedding_describe_and_compare_the_metric() -> None:
    df = pd.DataFrame({"run_key": list("pqrst"), "config_key": "c", "mig": [0.9, 0.8, 0.1, 0.2, 0.85],
                       "dto": [0.1, 0.2, 0.6, 0.5, 0.1], "polar_fraction": [0.0, 0.0, 0.4, 0.2, np.nan]})
    (row,) = restart_statistics(df, metric="mig", method="polar", by=("config_key",))
    assert row["split_by"] == "polar_fraction" and row["describe"]["n"] == 5  # MIG of all five described
    assert (row["n_disentangled"], row["n_entangled"]) == (2, 2)  # t: not evaluated, in neither set
    assert row["labels"] == {"p": DISENTANGLED, "q": DISENTANGLED, "r": ENTANGLED, "s": ENTANGLED, "t": MIDDLE}
    assert row["fraction_disentangled"] == 0.5 and 0 < row["fraction_lo"] < 0.5 < row["fraction_hi"] < 1
    assert row["compare"]["mig"]["cliffs_delta"] == 1.0 and row["compare"]["dto"]["cliffs_delta"] == -1.0
    (none,) = restart_statistics(df.drop(columns="polar_fraction"), method="polar", by=("config_key",))
    assert "no polar_fraction recorded" in none["error"]


def test_embedding_table_counts_per_group() -> None:
    df = pd.DataFrame({"config_key": ["c", "c", "c", "d"], "polar_fraction": [0.0, 0.2, np.nan, 0.0],
                       "embedding_residual_cartesian": [0.0, 0.4, np.nan, 0.1], "mig": [0.8, 0.2, 0.5, 0.7]})
    t = embedding_table(df, by=("config_key",)).set_index("config_key")
    assert t.loc["c", ["n", "n_cartesian", "n_polar", "n_unknown"]].tolist() == [3, 1, 1, 1]
    assert t.loc["c", "embedding_residual_cartesian_mean"] == pytest.approx(0.2)
    assert np.isnan(t.loc["c", "embedding_residual_polar_mean"])
    assert (t.loc["c", "mig_cartesian_mean"], t.loc["c", "mig_polar_mean"]) == (0.8, 0.2)
    assert np.isnan(t.loc["d", "mig_polar_mean"])
    assert embedding_table(df.drop(columns="polar_fraction")).empty


def test_stats_split_polar_on_a_store(study: Path, capsys) -> None:
    assert cli(["stats", str(study), "--split", "polar", "--format", "json", "--bootstrap", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    a = next(s for s in out["restart_statistics"] if "beta=0.001" in s["group"])
    b = next(s for s in out["restart_statistics"] if "beta=0.01" in s["group"])
    assert a["method"] == "polar" and a["split_by"] == "polar_fraction"
    assert (a["n_disentangled"], a["n_entangled"]) == (5, 3)
    assert {rk for rk, lab in a["labels"].items() if lab == ENTANGLED} == POLAR
    assert a["compare"]["mig"]["cliffs_delta"] == 1.0  # every cartesian restart has the higher MIG
    assert "no polar_fraction recorded" in b["error"]
    emb = {r["group"]: r for r in out["embedding"]}
    assert [(r["n_cartesian"], r["n_polar"], r["n_unknown"]) for r in emb.values()] == [(5, 3, 0), (0, 0, 8)]

    assert cli(["stats", str(study), "--split", "polar", "--bootstrap", "0"]) == 0
    text = capsys.readouterr().out
    assert "split by the embedding: cartesian" in text
    table = text.split("Cartesian vs polar restarts")[1].split("Correlations of DtO")[0].splitlines()
    assert "cartesian  polar  not evaluated  mig cart. vs polar" in table[1]
    a_line = next(ln for ln in table if "beta=0.001" in ln).split()
    assert a_line[3:11] == ["8", "5", "3", "0", "0.726", "vs", "0.15", "0.375"]  # n, cart., polar, not eval., MIG


def test_topk_stats_show_the_embedding_table_too(study: Path, capsys) -> None:
    assert cli(["stats", str(study), "--bootstrap", "0"]) == 0
    assert "Cartesian vs polar restarts" in capsys.readouterr().out


def test_report_lists_cartesian_and_polar_restarts(study: Path) -> None:
    html = build_report(connect(str(study)), str(study), n_boot=0, figures={})
    section = html.split("<h2>Cartesian vs polar restarts</h2>")[1].split("<h2>")[0]
    assert "Polar restarts (3)" in section
    assert all(f"<td>{rk}</td>" in section for rk in POLAR) and "<td>a0</td>" not in section
    # the traversal figure's best and worst restart (group a spreads most in MIG) with their embeddings
    assert "best restart a6 (cartesian)" in section and "worst restart a3 (polar)" in section


def test_report_without_the_embedding_metric_has_no_section(tmp_path: Path) -> None:
    rows = [checkpoint_row(f"r{s}", 10, seed=s, epochs=10, mig=0.1 * s) for s in range(4)]
    write_rows(str(tmp_path / "s"), "checkpoints", rows)
    html = build_report(connect(str(tmp_path / "s")), str(tmp_path / "s"), n_boot=0, figures={})
    assert "Cartesian vs polar" not in html
