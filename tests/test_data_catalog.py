"""The dataset registry: one entry per dataset, one check per option shared by the study spec and the data layer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sweep.spec import SpecError, validate_study
from workers.data import DataError, load
from workers.data.catalog import DATASETS, OptionSpec

REPO = Path(__file__).resolve().parent.parent


def _study(dataset: str, **overrides: object) -> dict:
    return {"study": "t", "grid": {"dataset": [dataset], "model": ["beta_vae"], "seeds": 1},
            "overrides": {dataset: {**overrides, "max_train": 64}} if overrides else {},
            "train": {"epochs": 1}}


@pytest.mark.parametrize(("dataset", "option", "value"), [
    ("synth_lin", "ratio", "big"), ("synth_lin", "ratio", -1.0), ("synth_nonlin", "n", 2.5),
    ("synth_nonlin", "data_seed", True), ("dsprites", "path", 3), ("shapes3d", "noise", 0.0),
])
def test_a_bad_option_value_gets_the_same_words_from_the_spec_and_the_data_layer(dataset: str, option: str,
                                                                                 value: object) -> None:
    words = DATASETS[dataset].options[option].problem(option, value)
    assert words is not None and f"option {option!r}" in words
    with pytest.raises(DataError) as data_err:
        load(dataset, **{option: value})
    assert str(data_err.value) == f"dataset {dataset!r}: {words}"
    with pytest.raises(SpecError) as spec_err:
        validate_study(_study(dataset, **{option: value}))
    assert f"field {option!r} ({dataset}/beta_vae): {words}" in str(spec_err.value)


def test_option_checks_accept_what_the_type_allows() -> None:
    assert OptionSpec(float, 1.0, "positive").problem("x", 2) is None  # an int for a float
    assert OptionSpec(str, None, "path").problem("path", Path("/tmp")) is None
    assert OptionSpec(str, None, "path").problem("path", None) is None
    assert "is required" in OptionSpec(str, None, "path", required=True).problem("path", None)


def test_every_registered_dataset_has_an_opener_and_consistent_factors() -> None:
    for name, info in DATASETS.items():
        assert info.name == name and callable(info.opener)
        assert set(info.map_options) <= set(info.options)
    for name in ("synth_lin", "dsprites", "shapes3d"):
        ds = load(name, **({"n": 100} if name == "synth_lin" else {}))
        assert [(n, s) for n, s in zip(ds.factor_names, ds.factor_sizes, strict=True)] == list(DATASETS[name].factors)
        assert tuple(ds.observation_shape) == DATASETS[name].observation_shape


def test_an_absent_dataset_file_is_a_note_for_validate_and_refused_by_submit(tmp_path: Path) -> None:
    data = _study("dsprites", path=str(tmp_path / "nope.npz"))
    study = validate_study(data, planned=True)
    assert study.absent_files == (str(tmp_path / "nope.npz"),) and len(study.restarts) == 1
    with pytest.raises(SpecError, match=r"dataset 'dsprites': option 'path': '.*nope.npz' does not exist; point it "
                                        r"at the official dsprites_ndarray"):
        validate_study(data)


def test_the_data_layer_imports_neither_the_perturbation_training_nor_torch() -> None:
    code = ("import sys, workers.data, workers.data.catalog, workers.data.perturbed; "
            "print(sorted(m for m in sys.modules if m.startswith('workers.perturbation') or m == 'torch'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert out.stdout.strip() == "[]"
