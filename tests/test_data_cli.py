"""`orthosweep datasets` and `orthosweep datasets show NAME --out sheet.png`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sweep.cli import main
from workers.data import load
from workers.data.contact_sheet import factor_sweeps


def test_datasets_lists_every_dataset_with_its_factors(capsys: pytest.CaptureFixture) -> None:
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("synth_lin", "synth_nonlin", "dsprites", "shapes3d", "mnist", "fashion_mnist"):
        assert name in out
    assert "shape=3, scale=6, orientation=40, posX=32, posY=32" in out
    assert "floor_hue=10, wall_hue=10, object_hue=10, scale=8, shape=4, orientation=15" in out


@pytest.mark.parametrize(("name", "extra"), [("dsprites", []), ("synth_lin", ["--option", "ratio=1.5"])])
def test_show_writes_a_contact_sheet_png(tmp_path: Path, name: str, extra: list[str],
                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sheet.png"
    assert main(["datasets", "show", name, "--out", str(out), *extra]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(out).shape[0] > 200
    assert str(out) in capsys.readouterr().out


def test_sheet_rows_vary_exactly_one_factor() -> None:
    ds = load("dsprites")
    f, labels = factor_sweeps(ds, columns=10, seed=3)
    assert f.shape == (5, 10, 5)
    for k in range(5):
        others = np.delete(f[k], k, axis=1)
        assert (others == others[:1]).all()  # only factor k varies in row k
        assert len(np.unique(f[k, :, k])) == min(10, ds.factor_sizes[k])
    assert labels[0][:3] == ["1", "2", "3"] and labels[0][3] == ""  # shape has 3 classes: the rest is padding


@pytest.mark.parametrize(("argv", "message"), [
    (["datasets", "show", "dsprite", "--out", "x.png"], "did you mean 'dsprites'"),
    (["datasets", "show", "synth_lin", "--out", "x.png", "--option", "ratio"], "expected KEY=VALUE"),
    (["datasets", "show", "synth_lin", "--out", "x.png", "--option", "size=3"], "unknown option"),
    (["datasets", "show", "dsprites", "--out", "x.png", "--path", "/nonexistent.npz"], "does not exist"),
])
def test_show_refuses_bad_input_with_exit_2(argv: list[str], message: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_prepare_converts_an_official_file_into_the_node_cache(tmp_path: Path, monkeypatch,
                                                             capsys: pytest.CaptureFixture) -> None:
    from test_data_official import write_dsprites_npz

    monkeypatch.setenv("ORTHOSWEEP_CACHE", str(tmp_path / "cache"))
    write_dsprites_npz(tmp_path / "d.npz")
    assert main(["datasets", "prepare", "dsprites", "--path", str(tmp_path / "d.npz")]) == 0
    assert "96 points ready" in capsys.readouterr().out
    assert len(list((tmp_path / "cache").glob("dsprites-file-*.npy"))) == 1
    assert main(["datasets", "prepare", "synth_lin", "--option", "n=10"]) == 0
    assert "nothing to cache" in capsys.readouterr().out
    assert main(["datasets", "prepare", "shapes3d", "--path", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
