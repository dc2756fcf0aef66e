"""The study spec: valid files expand to stable keys; every bad file is refused with a precise message."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import yaml

from sweep.cli import main
from sweep.spec import SpecError, StudySpec, load_study, stable_key, study_size, validate_study

BAD = sorted((Path(__file__).parent / "fixtures" / "bad_studies").glob("*.yaml"))
STUDIES = sorted((Path(__file__).parent.parent / "studies").glob("*.yaml"))

BASE = {
    "study": "t",
    "grid": {"dataset": ["synth_lin", "synth_nonlin"], "model": ["beta_vae", "ae", "beta_vae_sigma"],
             "beta": [1e-4, 1e-3], "seeds": 5},
    "train": {"epochs": 3, "seeds_per_trial": 2},
}


def _expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), path
    return first.removeprefix("# expect: ")


def test_there_are_at_least_20_distinct_bad_files() -> None:
    assert len(BAD) >= 20
    assert len({_expected(p) for p in BAD}) == len(BAD)


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_file_exits_2_with_field_value_and_nothing_written(path: Path, tmp_path: Path, capsys) -> None:
    text = path.read_text()
    storage_is_under_test = "storage:" in text
    args = ["validate", str(path)]
    if not storage_is_under_test:
        args += ["--storage", str(tmp_path / "store")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert _expected(path) in err, err
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_shipped_study_files_validate(path: Path) -> None:
    # a study on a perturbation not made yet validates as planned (validate, --dry-run) and names the folder;
    # tests/test_perturbation.py validates those studies strictly once stand-in folders exist
    study = load_study(path, planned=True)
    assert study.restarts and study.trials
    if "perturbation:" in path.read_text() and not study.planned:
        assert all(Path(f).exists() for f in {str(r.config.dataset_options.get("perturbation")) for r in study.restarts}
                   - {"None"})


def test_expansion_counts_and_paper_defaults(tmp_path: Path) -> None:
    study = validate_study({**BASE, "storage": str(tmp_path)})
    # ae takes no beta: 2 datasets x (beta_vae 2 betas + sigma 2 betas + ae 1) x 5 seeds
    assert len(study.restarts) == 2 * 5 * 5
    assert len(study.trials) == 2 * 5 * 3  # blocks of 2 seeds: 2, 2, 1
    by = {(r.config.dataset, r.config.model) for r in study.restarts}
    assert ("synth_lin", "ae") in by
    nonlin = next(r.config.to_dict() for r in study.restarts if r.config.dataset == "synth_nonlin")
    assert nonlin["arch"] == {"kind": "mlp", "encoder": [60, 40, 20], "decoder": [60, 40, 20],
                              "encoder_act": "tanh", "decoder_act": "tanh"}
    assert nonlin["optimizer"] == {"name": "adam", "lr": 1e-3}
    assert nonlin["latent_dim"] == 2
    assert all(t.checkpoints == (0, 3) for t in study.trials)


def test_paper_beta_fills_a_missing_grid_beta(tmp_path: Path) -> None:
    data = {"study": "t", "storage": str(tmp_path),
            "grid": {"dataset": ["synth_lin", "synth_nonlin", "dsprites"], "model": ["beta_vae"], "seeds": 1}}
    betas = {r.config.dataset: r.config.hparams["beta"] for r in validate_study(data).restarts}
    assert betas == {"synth_lin": 1e-4, "synth_nonlin": 1e-3, "dsprites": 4.0}


def test_keys_are_stable_across_reordering_and_runs(tmp_path: Path) -> None:
    a = validate_study({**BASE, "storage": str(tmp_path)})
    reordered = copy.deepcopy(BASE)
    reordered["grid"] = {"seeds": 5, "beta": [1e-3, 1e-4], "model": ["beta_vae_sigma", "ae", "beta_vae"],
                         "dataset": ["synth_nonlin", "synth_lin"]}
    b = validate_study({**reordered, "storage": str(tmp_path / "elsewhere")})
    assert {r.run_key for r in a.restarts} == {r.run_key for r in b.restarts}
    assert {r.config_key for r in a.restarts} == {r.config_key for r in b.restarts}
    # seeds_per_trial does not define a restart: same keys with another block size
    other_blocks = copy.deepcopy(BASE)
    other_blocks["train"]["seeds_per_trial"] = 5
    c = validate_study({**other_blocks, "storage": str(tmp_path)})
    assert {r.run_key for r in a.restarts} == {r.run_key for r in c.restarts}


def test_keys_are_a_pinned_function_of_the_definition() -> None:
    # A literal pin: the key of a fixed object must never change between versions or machines,
    # otherwise resuming a study would retrain everything.
    assert stable_key({"b": 1.0, "a": [1, 2]}) == stable_key({"a": [1, 2], "b": 1.0})
    assert stable_key({"a": 1}) == "015abd7f5cc57a2d"


def test_run_key_differs_by_seed_and_config_key_does_not(tmp_path: Path) -> None:
    study = validate_study({**BASE, "storage": str(tmp_path)})
    group = [r for r in study.restarts if r.config_key == study.restarts[0].config_key]
    assert len(group) == 5
    assert len({r.run_key for r in group}) == 5


def test_override_replaces_axis_for_one_dataset(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["overrides"] = {"synth_nonlin": {"beta": [1e-3], "epochs": 4}}
    study = validate_study({**data, "storage": str(tmp_path)})
    nonlin = [r.config.to_dict() for r in study.restarts if r.config.dataset == "synth_nonlin" and r.config.model ==
              "beta_vae"]
    assert {c["hparams"]["beta"] for c in nonlin} == {1e-3}
    assert {c["epochs"] for c in nonlin} == {4}


def test_degenerate_ratio_axis_applies_to_synth_lin(tmp_path: Path) -> None:
    data = {"study": "t", "storage": str(tmp_path),
            "grid": {"dataset": ["synth_lin"], "model": ["beta_vae"], "ratio": [1.0, 1.2, 1.5], "seeds": 2}}
    study = validate_study(data)
    assert sorted({r.config.dataset_options["ratio"] for r in study.restarts}) == [1.0, 1.2, 1.5]


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    data = {"study": "t", "storage": str(tmp_path),
            "grid": {"dataset": ["nope"], "model": ["nada"], "seeds": -1}}
    with pytest.raises(SpecError) as e:
        validate_study(data)
    assert len(e.value.problems) == 3


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    f = tmp_path / "evil.yaml"
    f.write_text("study: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_study(f)


def test_quickstart_round_trips_through_yaml(tmp_path: Path) -> None:
    study = load_study(STUDIES[0].parent / "quickstart.yaml", storage=str(tmp_path))
    again = validate_study(yaml.safe_load(yaml.safe_dump(study.normalized)))
    assert [r.run_key for r in again.restarts] == [r.run_key for r in study.restarts]


def test_extends_deep_merges_a_parent_study(tmp_path: Path) -> None:
    (tmp_path / "full.yaml").write_text(yaml.safe_dump({
        "study": "full", "grid": {"dataset": ["synth_lin"], "model": ["beta_vae"], "seeds": 10},
        "train": {"epochs": 600, "batch_size": 64}}))
    (tmp_path / "cpu.yaml").write_text("extends: full.yaml\nstudy: cpu\ngrid: {seeds: 2}\ntrain: {epochs: 6}\n")
    study = load_study(tmp_path / "cpu.yaml", storage=str(tmp_path / "s"))
    assert study.name == "cpu"
    assert len(study.restarts) == 2
    assert study.restarts[0].config.epochs == 6 and study.restarts[0].config.batch_size == 64


def test_extends_cycle_and_missing_parent_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nstudy: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nstudy: b\n")
    with pytest.raises(SpecError, match="extends itself"):
        load_study(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: nowhere.yaml\nstudy: c\n")
    with pytest.raises(SpecError, match="'nowhere.yaml' does not exist"):
        load_study(tmp_path / "c.yaml")


def test_locatello_grid_counts_match_the_paper(capsys: pytest.CaptureFixture) -> None:
    # the grid's seven datasets x 6 methods x 6 hyperparameters x 50 seeds; the official files of SmallNORB,
    # Cars3D and the scream background are not in the repository: validate counts their cells and names them
    path = Path(__file__).parent.parent / "studies" / "locatello2019_grid.yaml"
    study = load_study(path, planned=True)
    assert len(study.restarts) == 7 * 6 * 6 * 50
    assert {r.config.dataset for r in study.restarts} == {"dsprites", "color_dsprites", "noisy_dsprites",
                                                          "scream_dsprites", "smallnorb", "cars3d", "shapes3d"}
    assert study.absent_files == ("data/cars", "data/scream/scream.jpg", "data/small_norb")
    with pytest.raises(SpecError, match="option 'path': 'data/small_norb' does not exist"):
        load_study(path)  # submit refuses it until the files are there
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().err
    assert all(f"note: dataset path {p!r} is not on this machine: its 1800 restarts are counted" in err
               for p in study.absent_files)


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_arithmetic_count_equals_the_expansion(path: Path) -> None:
    study = load_study(path, planned=True)
    size = study_size(study.spec)
    assert (size.restarts, size.trials) == (len(study.restarts), len(study.trials))


def test_count_leaves_out_the_exclusive_perturbation_noise_cell(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["grid"] = {"dataset": ["synth_lin"], "model": ["ae"], "seeds": 5, "noise": [None, 0.1, 0.2]}
    data["overrides"] = {"synth_lin": {"perturbation": [None, str(tmp_path / "p1"), str(tmp_path / "p2")]}}
    spec = StudySpec.model_validate(data)
    # 3 × 3 combinations less the 2 × 2 that set both: 5 configurations, 5 seeds each, blocks of 2
    assert (study_size(spec).restarts, study_size(spec).trials) == (25, 15)


def test_a_study_above_the_restart_limit_is_refused_in_seconds_before_expansion(tmp_path: Path, capsys) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump({**BASE, "grid": {**BASE["grid"], "seeds": 100_000_000}}))
    started = time.monotonic()
    assert main(["validate", str(path), "--storage", str(tmp_path / "store")]) == 2
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    # 2 datasets × (beta_vae, beta_vae_sigma: 2 betas; ae: 1) = 10 configurations
    assert "100,000,000 seeds × 10 configurations = 1,000,000,000 restarts" in err
    assert "limit of 1,000,000" in err and "'resources.max_restarts'" in err and "'grid.seeds'" in err
    assert not (tmp_path / "store").exists()


def test_the_restart_limit_is_set_in_resources() -> None:
    with pytest.raises(SpecError, match="50 restarts .* above the limit of 49 restarts"):
        validate_study({**BASE, "resources": {"max_restarts": 49}})
    assert len(validate_study({**BASE, "resources": {"max_restarts": 50}}).restarts) == 50
    with pytest.raises(SpecError, match="'resources.max_restarts': got 0"):
        validate_study({**BASE, "resources": {"max_restarts": 0}})
