"""Aligned / linearly mixed / polar restarts in the analysis: `stats --split aligned|mixed|polar`, the stats
table, the report section, and rows evaluated before the three labels (polar vs not polar only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.report import build_report
from analysis.stats import (
    DISENTANGLED,
    ENTANGLED,
    MIDDLE,
    NOT_POLAR,
    embedding_labels,
    embedding_table,
    restart_statistics,
    split_restarts,
)
from sweep.cli import main as cli
from testing.synthetic_store import checkpoint_row
from workers.metrics.embedding import ALIGNED, MIXED, POLAR
from workers.store.views import connect
from workers.store.write import write_rows

# group a (beta 1e-3): polar a3, a5, a7 (MIG ~0.1), linearly mixed a1, a6 (~0.3), aligned a0, a2, a4 (~0.7);
# group b (1e-2): no embedding; group c (1e-1): rows evaluated before the three labels (c0 polar, others not)
LABEL = {"a3": POLAR, "a5": POLAR, "a7": POLAR, "a1": MIXED, "a6": MIXED, "a0": ALIGNED, "a2": ALIGNED,
         "a4": ALIGNED}
PAIRS = 3  # factor pairs per restart


def _emb(label: str) -> dict:
    polar, mixed = int(label == POLAR), int(label == MIXED)
    return {"polar_pairs": polar, "polar_fraction": polar / PAIRS, "mixed_pairs": mixed,
            "mixed_fraction": mixed / PAIRS, "aligned_pairs": PAIRS - polar - mixed,
            "aligned_fraction": (PAIRS - polar - mixed) / PAIRS, "embedding_axis_purity": 0.6 if mixed else 0.97,
            "embedding_residual_cartesian": 0.5 if polar else 0.01, "embedding_residual_polar": 0.02 if polar
            else 0.6, "embedding_per_pair": [-0.48 if polar else 0.59, 0.59, 0.59]}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    study_dir = tmp_path_factory.mktemp("emb") / "emb"
    rows = []
    for g, beta in (("a", 1e-3), ("b", 1e-2), ("c", 1e-1)):
        for s in range(8):
            rk = f"{g}{s}"
            label = LABEL.get(rk)
            if g == "a":
                emb = _emb(label)
            elif g == "c":
                emb = {"polar_pairs": int(s == 0), "polar_fraction": float(s == 0) / PAIRS}
            else:
                emb = {}
            mig = {POLAR: 0.1, MIXED: 0.3, ALIGNED: 0.7, None: 0.5}[label] + 0.01 * s
            rows.append(checkpoint_row(rk, 10, config_key=f"cfg{g}", seed=s, beta=beta, epochs=10,
                                       mig=mig, dto=0.3, **emb))
    write_rows(str(study_dir), "checkpoints", rows)
    return study_dir


def test_split_restarts_polar_labels_not_polar_as_the_disentangled_side() -> None:
    labels = split_restarts(np.array([0.0, 0.5, np.nan, 1 / 15, 0.0]), "polar")
    assert labels.tolist() == [DISENTANGLED, ENTANGLED, MIDDLE, ENTANGLED, DISENTANGLED]
    with pytest.raises(ValueError, match="allowed: topk, threshold, mixture, aligned, mixed, polar"):
        split_restarts(np.zeros(3), "poler")  # type: ignore[arg-type]


def test_restart_labels_from_the_fractions_and_from_old_rows() -> None:
    df = pd.DataFrame({"polar_fraction": [0.0, 0.0, 0.5, 0.0, np.nan, 0.5],
                       "mixed_fraction": [0.0, 0.5, 0.5, np.nan, np.nan, np.nan]})
    assert embedding_labels(df).tolist() == [ALIGNED, MIXED, POLAR, NOT_POLAR, None, POLAR]
    assert embedding_labels(df.drop(columns="mixed_fraction")).tolist() == [NOT_POLAR, NOT_POLAR, POLAR,
                                                                            NOT_POLAR, None, POLAR]


@pytest.mark.parametrize(("method", "dis", "ent"), [
    ("aligned", {"p", "q"}, {"r", "s", "u"}), ("mixed", {"p", "q"}, {"u"}), ("polar", {"p", "q", "u"}, {"r", "s"})])
def test_restart_statistics_split_by_embedding_describe_and_compare_the_metric(method: str, dis: set,
                                                                               ent: set) -> None:
    df = pd.DataFrame({"run_key": list("pqrstu"), "config_key": "c", "mig": [0.9, 0.8, 0.1, 0.2, 0.85, 0.3],
                       "dto": [0.1, 0.2, 0.6, 0.5, 0.1, 0.4], "polar_fraction": [0.0, 0.0, 0.4, 0.2, np.nan, 0.0],
                       "mixed_fraction": [0.0, 0.0, 0.2, 0.0, np.nan, 0.5]})
    (row,) = restart_statistics(df, metric="mig", method=method, by=("config_key",))
    assert row["split_by"] == "embedding" and row["describe"]["n"] == 6  # MIG of all six described
    assert {rk for rk, lab in row["labels"].items() if lab == DISENTANGLED} == dis
    assert {rk for rk, lab in row["labels"].items() if lab == ENTANGLED} == ent  # t: not evaluated, in neither
    assert row["fraction_disentangled"] == pytest.approx(len(dis) / (len(dis) + len(ent)))
    assert row["compare"]["mig"]["cliffs_delta"] == 1.0 and row["compare"]["dto"]["cliffs_delta"] == -1.0
    (none,) = restart_statistics(df.drop(columns="polar_fraction"), method=method, by=("config_key",))
    assert "no embedding recorded" in none["error"]


def test_embedding_table_counts_per_group() -> None:
    df = pd.DataFrame({"config_key": ["c", "c", "c", "c", "d"], "polar_fraction": [0.0, 0.2, np.nan, 0.0, 0.0],
                       "mixed_fraction": [0.0, 0.0, np.nan, 0.5, np.nan],
                       "embedding_residual_cartesian": [0.0, 0.4, np.nan, 0.2, 0.1],
                       "mig": [0.8, 0.2, 0.5, 0.4, 0.7]})
    t = embedding_table(df, by=("config_key",)).set_index("config_key")
    assert t.loc["c", ["n", "n_aligned", "n_mixed", "n_polar", "n_not_polar", "n_unknown"]].tolist() == [
        4, 1, 1, 1, 0, 1]
    assert t.loc["d", ["n_aligned", "n_not_polar"]].tolist() == [0, 1]  # evaluated before the three labels
    assert t.loc["c", "embedding_residual_cartesian_mean"] == pytest.approx(0.2)
    assert np.isnan(t.loc["c", "embedding_residual_polar_mean"])
    assert [t.loc["c", f"mig_{n}_mean"] for n in ("aligned", "mixed", "polar")] == [0.8, 0.4, 0.2]
    assert np.isnan(t.loc["d", "mig_polar_mean"])
    assert embedding_table(df.drop(columns="polar_fraction")).empty


def test_stats_split_by_each_label_on_a_store(study: Path, capsys) -> None:
    for method, (n_dis, n_ent) in (("aligned", (3, 5)), ("mixed", (3, 2)), ("polar", (5, 3))):
        assert cli(["stats", str(study), "--split", method, "--format", "json", "--bootstrap", "0"]) == 0
        out = json.loads(capsys.readouterr().out)
        by = {s["group"]: s for s in out["restart_statistics"]}
        a, b, c = by["beta_vae · beta=0.001"], by["beta_vae · beta=0.01"], by["beta_vae · beta=0.1"]
        assert a["method"] == method and a["split_by"] == "embedding"
        assert (a["n_disentangled"], a["n_entangled"]) == (n_dis, n_ent), method
        assert a["compare"]["mig"]["cliffs_delta"] == 1.0  # the disentangled side has the higher MIG
        assert "no embedding recorded" in b["error"]
        if method == "polar":  # old rows still split polar vs not polar
            assert (c["n_disentangled"], c["n_entangled"]) == (7, 1)
        else:
            assert (c["n_disentangled"], c["n_entangled"]) == (0, 1 if method == "aligned" else 0)
    emb = {r["group"]: r for r in out["embedding"]}
    counts = [(r["n_aligned"], r["n_mixed"], r["n_polar"], r["n_not_polar"], r["n_unknown"]) for r in emb.values()]
    assert counts == [(3, 2, 3, 0, 0), (0, 0, 0, 0, 8), (0, 0, 1, 7, 0)]

    assert cli(["stats", str(study), "--split", "mixed", "--bootstrap", "0"]) == 0
    text = capsys.readouterr().out
    assert "split by the embedding: aligned restarts ('dis') vs linearly mixed ones ('ent')" in text
    table = text.split("Aligned, linearly mixed and polar restarts")[1].split("Correlations of DtO")[0].splitlines()
    assert "aligned  mixed  polar  not polar (old)  not evaluated" in table[1]
    a_line = next(ln for ln in table if "beta=0.001" in ln).split()
    assert a_line[3:9] == ["8", "3", "2", "3", "0", "0"]  # n, aligned, mixed, polar, old, not evaluated
    assert a_line[9:14] == ["0.72", "/", "0.335", "/", "0.15"]  # MIG of each set


def test_topk_stats_show_the_embedding_table_too(study: Path, capsys) -> None:
    assert cli(["stats", str(study), "--bootstrap", "0"]) == 0
    assert "Aligned, linearly mixed and polar restarts" in capsys.readouterr().out


def test_report_lists_the_embedding_labels_and_polar_restarts(study: Path) -> None:
    html = build_report(connect(str(study)), str(study), n_boot=0, figures={})
    section = html.split("<h2>Aligned, linearly mixed and polar restarts</h2>")[1].split("<h2>")[0]
    assert "Polar restarts (4)" in section  # a3, a5, a7 and the old row c0
    assert all(f"<td>{rk}</td>" in section for rk in (*(k for k, v in LABEL.items() if v == POLAR), "c0"))
    assert "<td>a0</td>" not in section
    # the traversal figure's best and worst restart (group a spreads most in MIG) with their embeddings
    assert "best restart a4 (aligned)" in section and "worst restart a3 (polar)" in section


def test_report_without_the_embedding_metric_has_no_section(tmp_path: Path) -> None:
    rows = [checkpoint_row(f"r{s}", 10, seed=s, epochs=10, mig=0.1 * s) for s in range(4)]
    write_rows(str(tmp_path / "s"), "checkpoints", rows)
    html = build_report(connect(str(tmp_path / "s")), str(tmp_path / "s"), n_boot=0, figures={})
    assert "linearly mixed" not in html
