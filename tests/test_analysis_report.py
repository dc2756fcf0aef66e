"""Figures, traversals from saved checkpoints, `orthosweep stats/plots/report`, and the report in Chromium."""

from __future__ import annotations

import io
import json
import re
from functools import partial
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from analysis.figures import all_figures
from analysis.frames import restart_config
from analysis.plots import NothingToDraw, figure_png, message_figure
from analysis.report import build_report
from analysis.traversals import decode_traversal, traversal_figure
from sweep.cli import main as cli
from sweep.spec import validate_study
from testing.synthetic_store import checkpoint_row
from workers.checkpoint import save_torch
from workers.store.layout import model_uri
from workers.store.views import connect
from workers.store.write import write_rows

EPOCHS = (0, 5, 10)


def _configs(tmp_path: Path) -> list[dict]:
    """Real restart configs (linear synth_lin beta-VAE, two betas) as the spec expands them."""
    study = validate_study({"study": "planted", "storage": str(tmp_path), "train": {"epochs": 10},
                            "grid": {"dataset": "synth_lin", "model": "beta_vae", "beta": [1e-3, 1e-2], "seeds": 1}})
    return [r.config.to_dict() for r in study.restarts]


def _decoder_state(w: np.ndarray, b: np.ndarray) -> dict[str, torch.Tensor]:
    """State dict of the linear synth_lin beta-VAE (latent 2 -> data 3) with decoder z @ w + b."""
    return {"enc.fc0.weight": torch.zeros(3, 4), "enc.fc0.bias": torch.zeros(4),
            "dec.fc0.weight": torch.as_tensor(w, dtype=torch.float32),
            "dec.fc0.bias": torch.as_tensor(b, dtype=torch.float32)}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two groups of 12 restarts; group 0 has a planted bimodal MIG (5 high) with DtO = 1 − MIG; every
    restart has rows at epochs 0, 5, 10; the best and worst restart of group 0 have saved checkpoints."""
    tmp = tmp_path_factory.mktemp("report")
    study_dir = tmp / "planted"
    study_dir.mkdir()
    (study_dir / "study.yaml").write_text("study: planted\ngrid: {dataset: synth_lin, model: beta_vae, seeds: 12}\n")
    rng = np.random.default_rng(0)
    rows = []
    for g, cfg in enumerate(_configs(tmp)):
        ck = f"cfg{g}"
        for s in range(12):
            high = g == 0 and s < 5
            final = (0.8 if high else 0.1) + rng.normal(0, 0.02)
            for e in EPOCHS:
                mig = final * (e + 1) / 11
                rows.append(checkpoint_row(f"g{g}s{s}", e, config_key=ck, seed=s, beta=cfg["hparams"]["beta"],
                                           config=cfg, epochs=10, mig=mig, dto=1 - mig, ds=mig + 0.01 * s,
                                           recon=2 - mig, kl=1 + mig, active_units=2,
                                           mig_per_factor=[mig, mig / 2]))
    write_rows(str(study_dir), "checkpoints", rows)
    last = sorted((r for r in rows if r["config_key"] == "cfg0" and r["epoch"] == 10), key=lambda r: r["mig"])
    best, worst = last[-1]["run_key"], last[0]["run_key"]
    save_torch(_decoder_state(np.eye(2, 3), np.zeros(3)), model_uri(str(study_dir), best, 10))
    save_torch(_decoder_state(np.ones((2, 3)), np.ones(3)), model_uri(str(study_dir), worst, 10))
    return study_dir


def test_traversal_of_a_known_linear_decoder(tmp_path: Path) -> None:
    cfg = _configs(tmp_path)[0]
    w, b = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]]), np.array([0.1, 0.2, 0.3])
    uri = model_uri(str(tmp_path / "s"), "rk", 10)
    save_torch(_decoder_state(w, b), uri)
    values, out = decode_traversal(cfg, uri, steps=5, span=2.0)
    assert values.tolist() == [-2, -1, 0, 1, 2] and out.shape == (2, 5, 3)
    for j in range(2):  # latent j swept, the other held at 0: x = v * w[j] + b
        np.testing.assert_allclose(out[j], values[:, None] * w[j] + b, atol=1e-6)


def test_traversal_without_saved_checkpoint_says_so(study: Path) -> None:
    con = connect(str(study))
    runs = con.execute("SELECT * FROM runs WHERE config_key = 'cfg1'").df()
    with pytest.raises(NothingToDraw, match="(?s)no saved checkpoint.*traversals are drawn only from saved models"):
        traversal_figure(runs, str(study), partial(restart_config, con))


def test_stats_command_finds_the_planted_split(study: Path, capsys) -> None:
    assert cli(["stats", str(study), "--split", "mixture", "--format", "json", "--bootstrap", "50"]) == 0
    out = json.loads(capsys.readouterr().out)
    g0 = next(s for s in out["restart_statistics"] if "beta=0.001" in s["group"])
    assert g0["n_disentangled"] == 5 and g0["n_entangled"] == 7
    assert {rk for rk, lab in g0["labels"].items() if lab == 1} == {f"g0s{s}" for s in range(5)}
    assert g0["compare"]["dto"]["cliffs_delta"] == -1.0
    rho = {(c["group"], c["metric"]): c["spearman"] for c in out["correlations"]}
    assert rho[(g0["group"], "mig")] == pytest.approx(-1.0)
    assert cli(["stats", str(study), "--bootstrap", "50"]) == 0
    assert "Entangled vs disentangled" in capsys.readouterr().out


def test_traversals_of_best_and_worst_restart_are_drawn_from_their_checkpoints(study: Path) -> None:
    con = connect(str(study))
    fig = traversal_figure(con.execute("SELECT * FROM runs").df(), str(study), partial(restart_config, con))
    # group cfg0 has the widest MIG spread
    lines = [ax for ax in fig.axes if ax.lines]
    assert len(lines) == 4  # best and worst restart x 2 latents
    best_z0 = lines[0].lines  # decoder eye(2, 3): z0 moves x0 only, with slope 1
    np.testing.assert_allclose(best_z0[0].get_ydata(), best_z0[0].get_xdata(), atol=1e-6)
    np.testing.assert_allclose(best_z0[1].get_ydata(), 0, atol=1e-6)


def test_plots_command_writes_every_figure(study: Path, tmp_path: Path) -> None:
    assert cli(["plots", str(study), "--out", str(tmp_path / "figs")]) == 0
    names = {p.stem for p in (tmp_path / "figs").glob("*.png")}
    assert {"hist_mig", "scatter_dto_mig_by_epoch", "beta_line_search", "violins_mig_over_beta",
            "per_factor_mig", "traversals_best_worst"} <= names


def _blank(png: bytes) -> bytes:
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(4, 3))
    fig.patch.set_facecolor("white")
    return figure_png(fig) if png else b""


def _nonblank_fraction(img: np.ndarray) -> float:
    """Fraction of pixels that are not (near) white."""
    rgb = img[..., :3]
    return float((rgb.min(axis=-1) < 0.9).mean())


def test_report_renders_in_headless_chromium_without_errors(study: Path, tmp_path: Path) -> None:
    from analysis_chromium import Browser, chromium_path

    exe = chromium_path()
    if exe is None:
        pytest.fail("chromium is not installed: run `make browser` (apt-get install chromium); CI installs it")
    assert cli(["report", str(study), "--bootstrap", "50"]) == 0
    report = study / "report.html"
    text = report.read_text()
    # no external resource: no URL outside the embedded data URIs (whose base64 may spell "http" by chance)
    assert "src='data:image/png;base64," in text
    assert "http" not in re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", text.replace(str(study), ""))
    con = connect(str(study))
    figs = all_figures(con, str(study))
    blank_html = tmp_path / "blank.html"
    blank_html.write_text(build_report(con, str(study), n_boot=20,
                                       figures={"blank": _blank(b"x"), "hist_mig": figs["hist_mig"]}))
    browser = Browser(exe)
    try:
        results = {}
        for name, path in (("report", report), ("control", blank_html)):
            session = browser.open(path.as_uri())
            rects = browser.evaluate(
                "Array.from(document.images).map(i => { const r = i.getBoundingClientRect();"
                " return {alt: i.alt, ok: i.complete && i.naturalWidth > 0, x: r.left + scrollX, y: r.top + scrollY,"
                " w: r.width, h: r.height}; })", session)
            shot = mpimg.imread(io.BytesIO(browser.screenshot(session)), format="png")
            results[name] = (rects, shot, browser.console_errors(session))
    finally:
        browser.close()
    rects, shot, errors = results["report"]
    assert errors == []
    alts = [r["alt"] for r in rects]
    assert alts[:len(figs)] == list(figs)  # every figure is in the page, in order
    views = ["reconstructions.png", "prior_samples.png", "traversals_1d.png", "traversal_2d.png", "traversals.gif"]
    assert alts[len(figs):] == views + views  # then the best and the worst restart opened up
    for r in rects:
        assert r["ok"], f"figure {r['alt']} did not decode"
        crop = shot[int(r["y"]):int(r["y"] + r["h"]), int(r["x"]):int(r["x"] + r["w"])]
        assert crop.shape[0] > 50 and crop.shape[1] > 50, f"figure {r['alt']} has no size on the page"
        assert _nonblank_fraction(crop) > 0.02, f"figure {r['alt']} rendered blank"
    # the check is able to fail: a white figure is detected as blank, a real one next to it is not
    rects, shot, errors = results["control"]
    frac = {r["alt"]: _nonblank_fraction(shot[int(r["y"]):int(r["y"] + r["h"]), int(r["x"]):int(r["x"] + r["w"])])
            for r in rects}
    assert frac["blank"] < 0.02 < frac["hist_mig"]


def test_message_figure_is_not_blank() -> None:
    img = mpimg.imread(io.BytesIO(figure_png(message_figure("nothing recorded"))), format="png")
    assert _nonblank_fraction(img) > 0.001


def test_2d_traversal_of_a_known_linear_decoder_is_its_image_grid(tmp_path: Path, study: Path) -> None:
    from analysis.traversals import decode_traversal_2d, traversal_2d_figure

    cfg = _configs(tmp_path)[0]
    w, b = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]]), np.array([0.1, 0.2, 0.3])
    uri = model_uri(str(tmp_path / "s"), "rk", 10)
    save_torch(_decoder_state(w, b), uri)
    values, out = decode_traversal_2d(cfg, uri, (0, 1), steps=5, span=2.0)
    assert out.shape == (5, 5, 3)
    for i, va in enumerate(values):  # x = z0 w0 + z1 w1 + b on the whole grid
        np.testing.assert_allclose(out[i], va * w[0] + values[:, None] * w[1] + b, atol=1e-6)
    con = connect(str(study))
    fig = traversal_2d_figure(con.execute("SELECT * FROM runs").df(), str(study), partial(restart_config, con))
    best = fig.axes[0]  # decoder eye(2, 3): the z-grid itself, so a line of fixed z0 = -2.5 has x0 = -2.5
    assert len(best.lines) == 2 * 7
    np.testing.assert_allclose(best.lines[0].get_xdata(), np.linspace(-2.5, 2.5, 7)[0], atol=1e-6)
