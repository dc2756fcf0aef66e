"""The optimised ε-perturbation (thesis §4.2.4, §4.3.1): `orthosweep perturb` and the `perturbation:` option.

Fast tests use folders written by `write_perturbation` around an untrained m (the folder format, the bounds,
normalisation, determinism and the errors); the end-to-end test runs the chain through the CLI on Synth. Lin.:
a tiny β-VAE source study → `orthosweep perturb --steps 50` → the folder → validating the declared CPU studies
(which name the folder it wrote) → one epoch of a study on the `perturbation:` and `noise:` variants.
"""

from __future__ import annotations

import collections
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sweep_helpers import VENV_BIN

from sweep.errors import SpecError
from sweep.spec import validate_study
from workers.data import DataError, GridDataset, load
from workers.data.perturbation_folder import read_meta
from workers.data.perturbation_network import manipulation
from workers.data.perturbed import PerturbedDataset
from workers.perturbation.train import write_perturbation

REPO = Path(__file__).resolve().parent.parent
CLI = str(VENV_BIN / "orthosweep")


def _folder(path: Path, dataset, eps: float = 0.1, options: dict | None = None, seed: int = 0) -> str:
    torch.manual_seed(seed)
    net = manipulation(tuple(dataset.observation_shape), dataset.num_factors)
    write_perturbation(str(path), net, dataset, options or {}, eps, name=path.name, source={}, training={},
                       losses={})
    return str(path)


def _check_perturbed(ds, base, idx: np.ndarray, eps: float) -> np.ndarray:
    x, x0 = ds.observations_at(idx), base.observations_at(idx)
    d = np.abs(x.astype(np.float64) - x0)
    assert x.dtype == np.float32 and d.max() <= eps and d.max() > 0
    np.testing.assert_array_equal(ds.factors_at(idx), base.factors_at(idx))
    np.testing.assert_array_equal(ds.observations(ds.factors_at(idx)), x)  # arbitrary factors: the same x'
    np.testing.assert_array_equal(ds.observations_at(idx[::-1][:5]), x[::-1][:5])  # any subset, any order
    assert len(ds) == len(base)
    for part in ("train", "eval", "test"):
        np.testing.assert_array_equal(ds.split_indices(part), base.split_indices(part))
    return x


def test_image_perturbation_is_bounded_normalised_and_deterministic(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ORTHOSWEEP_DATA_CACHE", "never")
    base = load("dsprites")
    folder = _folder(tmp_path / "dsp", base, eps=0.1, options={"path": None, "data_seed": 0})
    files = sorted(p.name for p in Path(folder).iterdir())
    assert files == ["contact_sheet.png", "manipulation.pt", "perturbation.yaml"]
    ds = load("dsprites", perturbation=folder)
    idx = np.random.default_rng(0).choice(len(base), 64, replace=False)
    x = _check_perturbed(ds, base, idx, 0.1)
    assert x.min() >= 0.0 and x.max() <= 1.0  # reflected into [0, 1]
    np.testing.assert_array_equal(load("dsprites", perturbation=folder).observations_at(idx), x)
    levels = ds.levels(ds.factors_at(idx))
    assert levels.dtype == np.int8 and np.abs(levels).max() <= 127


class _Tiny(GridDataset):
    """A 3×4 grid of 64×64 grey images: small enough to build the perturbation's node cache in a test."""

    name = "tiny"
    factor_names = ["a", "b"]
    factor_sizes = [3, 4]
    factor_values = [np.arange(3.0), np.arange(4.0)]
    observation_shape = (1, 64, 64)

    def observations_at(self, indices: np.ndarray) -> np.ndarray:
        idx = np.asarray(indices)
        return np.broadcast_to((idx / 11.0).astype(np.float32)[:, None, None, None], (idx.size, 1, 64, 64)).copy()


def test_node_cache_of_a_grid_gives_the_same_bits_as_on_demand(tmp_path: Path, monkeypatch) -> None:
    tiny = _Tiny()
    folder = _folder(tmp_path / "tiny", tiny, eps=0.2)
    monkeypatch.setenv("ORTHOSWEEP_DATA_CACHE", "never")
    on_demand = PerturbedDataset(tiny, folder, meta=read_meta(folder)).observations_at(np.arange(12))
    monkeypatch.setenv("ORTHOSWEEP_DATA_CACHE", "always")
    cached = PerturbedDataset(tiny, folder, meta=read_meta(folder))
    np.testing.assert_array_equal(cached.observations_at(np.arange(12)), on_demand)
    assert cached._cache is not None and cached.computed == 0


def test_vector_perturbation_skips_normalisation_and_is_a_function_of_the_factors(tmp_path: Path) -> None:
    base = load("synth_lin", n=500)
    folder = _folder(tmp_path / "lin", base, eps=0.05, options={"ratio": 2.0, "n": 500, "data_seed": 0})
    meta = yaml.safe_load((Path(folder) / "perturbation.yaml").read_text())
    assert meta["normalisation"].startswith("none") and meta["dataset"] == "synth_lin"
    ds = load("synth_lin", n=2000, perturbation=folder)  # n only picks the points: the same map, allowed
    big = load("synth_lin", n=2000)
    _check_perturbed(ds, big, np.arange(2000), 0.05)
    f = np.random.default_rng(3).uniform(0, 1, (10, 2))  # factors that are no stored point
    np.testing.assert_array_equal(ds.observations(f), load("synth_lin", n=7, perturbation=folder).observations(f))


def test_bad_perturbation_folders_are_refused_with_the_fix(tmp_path: Path) -> None:
    lin = load("synth_lin", n=100)
    folder = _folder(tmp_path / "lin", lin, options={"ratio": 2.0, "n": 100, "data_seed": 0})
    with pytest.raises(DataError, match=r"option 'perturbation': folder .* does not exist .*orthosweep perturb"):
        load("synth_lin", n=100, perturbation=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no perturbation.yaml"):
        load("synth_lin", n=100, perturbation=str(tmp_path / "empty"))
    with pytest.raises(DataError, match="was made for dataset 'synth_lin', not 'synth_nonlin'"):
        load("synth_nonlin", n=100, perturbation=folder)
    with pytest.raises(DataError, match=r"made for synth_lin with ratio=2.0, this restart uses ratio=1.5"):
        load("synth_lin", n=100, ratio=1.5, perturbation=folder)
    with open(Path(folder) / "manipulation.pt", "ab") as f:  # weights altered after the yaml was written
        f.write(b"\0")
    with pytest.raises(DataError, match="sha256 .* differs"):
        load("synth_lin", n=100, perturbation=folder)


def test_study_validation_checks_the_folder_and_spans_three_variants(tmp_path: Path) -> None:
    lin = load("synth_lin", n=100)
    folder = _folder(tmp_path / "lin", lin, options={"ratio": 2.0})
    spec = {"study": "p", "storage": str(tmp_path / "res"),
            "grid": {"dataset": ["synth_lin"], "model": ["beta_vae", "ae"], "seeds": 2},
            "overrides": {"synth_lin": {"n": 128, "perturbation": [None, folder], "noise": [None, 0.1]}},
            "train": {"epochs": 1}}
    study = validate_study(spec)
    variants = {(r.config.model, r.config.dataset_options.get("perturbation"), r.config.dataset_options.get("noise"))
                for r in study.restarts}
    assert len(study.restarts) == 2 * 3 * 2 and len(variants) == 6  # orig., mod., noise; never both
    spec["overrides"]["synth_lin"]["perturbation"] = str(tmp_path / "nope")
    with pytest.raises(SpecError, match=r"option 'perturbation': folder .*nope.* does not exist"):
        validate_study(spec)
    spec["overrides"]["synth_lin"].update(perturbation=folder, noise=0.1)  # both set, no null to pair them
    with pytest.raises(SpecError, match="exclude each other"):
        validate_study(spec)
    spec["overrides"]["synth_lin"].update(noise=None, ratio=3.0)
    with pytest.raises(SpecError, match="this restart uses ratio=3.0"):
        validate_study(spec)


def _bare_folder(path: Path, dataset: str, obs_shape: tuple[int, ...], k: int, eps: float) -> None:
    """A folder as `perturb` writes it, without training or a contact sheet (what validation reads)."""
    import hashlib
    import io

    from workers.data.perturbation_folder import FORMAT
    from workers.data.perturbation_network import architecture

    path.mkdir(parents=True)
    buf = io.BytesIO()
    torch.save(manipulation(obs_shape, k).state_dict(), buf)
    (path / "manipulation.pt").write_bytes(buf.getvalue())
    meta = {"format": FORMAT, "dataset": dataset, "dataset_options": {}, "epsilon": eps,
            "architecture": architecture(obs_shape, k),
            "weights": {"file": "manipulation.pt", "sha256": hashlib.sha256(buf.getvalue()).hexdigest()}}
    (path / "perturbation.yaml").write_text(yaml.safe_dump(meta))


def test_shipped_perturbation_studies_validate_once_the_folders_exist(tmp_path: Path, monkeypatch) -> None:
    from sweep.spec import load_study

    monkeypatch.chdir(tmp_path)  # the studies name ./results/perturbations/<name>
    files = {s: REPO / "studies" / f"zietlow2021_{s}.yaml"
             for s in ("perturbed", "robustness", "perturbed_cpu", "robustness_cpu")}
    for path in files.values():
        with pytest.raises(SpecError, match=r"option 'perturbation': folder '\./results/perturbations/.*' does not "
                                            r"exist .*orthosweep perturb"):
            load_study(path)
    root = tmp_path / "results" / "perturbations"
    _bare_folder(root / "dsprites_eps0.1", "dsprites", (1, 64, 64), 5, 0.1)
    _bare_folder(root / "shapes3d_eps0.175", "shapes3d", (3, 64, 64), 6, 0.175)
    _bare_folder(root / "synth_lin_e0.2", "synth_lin", (3,), 2, 0.2)
    _bare_folder(root / "synth_lin_e0.1", "synth_lin", (3,), 2, 0.1)
    studies = {s: load_study(p) for s, p in files.items()}
    full = studies["perturbed"]
    cells = {(r.config.dataset, r.config.model, "perturbation" in r.config.dataset_options,
              r.config.dataset_options.get("noise")) for r in full.restarts}
    # datasets x models (ae, beta_vae, beta_tcvae, factorvae, slowvae, pcl) x variants x seeds
    assert len(full.restarts) == 2 * 6 * 3 * 10 and len(cells) == 2 * 6 * 3
    assert all(r.config.latent_dim == {"dsprites": 5, "shapes3d": 6}[r.config.dataset] for r in full.restarts)
    hp = {(r.config.dataset, r.config.model): r.config.hparams for r in full.restarts}
    assert hp[("dsprites", "beta_vae")]["beta"] == 8.0 and hp[("dsprites", "beta_tcvae")]["beta"] == 6.0
    assert hp[("dsprites", "factorvae")]["gamma"] == 35.0 and hp[("shapes3d", "factorvae")]["gamma"] == 7.0
    assert hp[("dsprites", "slowvae")]["beta"] == 1.0 and hp[("shapes3d", "slowvae")]["beta"] == 1.0  # Table 4.1
    assert {r.config.dataset_options.get("noise") for r in full.restarts} == {None, 0.1, 0.175}
    robust = studies["robustness"]
    assert len(robust.restarts) == 3 * 6 * 10
    assert all(r.config.dataset_options["perturbation"].endswith("shapes3d_eps0.175") for r in robust.restarts)
    assert {r.config.hparams["beta"] for r in robust.restarts if r.config.model == "beta_vae"} == {
        32.0 * f for f in (0.75, 1.0, 1.25, 1.5, 1.75, 2.0)}
    cpu = studies["perturbed_cpu"]
    assert {r.config.dataset for r in cpu.restarts} == {"synth_lin"}
    assert len(cpu.restarts) == 5 * 4 * 10  # models x variants (orig., mod. at two epsilons, noise) x seeds
    assert {r.config.arch.kind for r in cpu.restarts} == {"linear"}
    seeds = collections.defaultdict(set)  # restarts pair by seed: the same seeds in every variant of a model
    for r in cpu.restarts:
        seeds[r.config.model].add((r.config.dataset_options.get("perturbation"), r.config.dataset_options.get("noise"),
                                   r.seed))
    assert all(len(v) == 4 * 10 for v in seeds.values()) and len(seeds) == 5


# ---- end to end through the CLI ---------------------------------------------------------------------------

def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}


def _cli(cwd: Path, *args: str, ok: bool = True, timeout: float = 240) -> subprocess.CompletedProcess:
    done = subprocess.run([CLI, *args], env=_env(), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if ok:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_perturb_chain_end_to_end(tmp_path: Path) -> None:
    cpu_studies = [REPO / "studies" / f"zietlow2021_{s}_cpu.yaml" for s in ("perturbed", "robustness")]
    # before `perturb`: the declared CPU studies name a folder that does not exist yet; validate counts them
    # and notes the folder, submit refuses them before scheduling anything, and both say how to make it
    planned = _cli(tmp_path, "validate", str(cpu_studies[0]))
    assert "restarts" in planned.stdout and "results/perturbations/synth_lin_e0.2" in planned.stderr
    bad = _cli(tmp_path, "submit", str(cpu_studies[0]), ok=False)
    assert bad.returncode == 2 and "results/perturbations/synth_lin_e0.2" in bad.stderr + bad.stdout
    assert "orthosweep perturb" in bad.stderr + bad.stdout
    assert not (tmp_path / "results" / "zietlow2021_perturbed_cpu").exists()

    src = {"study": "src", "storage": "./results",
           "grid": {"dataset": ["synth_lin"], "model": ["beta_vae"], "seeds": 4},
           "overrides": {"synth_lin": {"n": 256}},
           "train": {"epochs": 2, "seeds_per_trial": 4, "batch_size": 64},
           "eval": {"metrics": ["mig"], "n_eval": 64}, "resources": {"cpu": 1}}
    (tmp_path / "src.yaml").write_text(yaml.safe_dump(src))
    _cli(tmp_path, "submit", "src.yaml")
    # 50 steps prove the plumbing, not the manipulation: any objective is accepted (--min-fall)
    out = _cli(tmp_path, "perturb", "results/src", "--dataset", "synth_lin", "--epsilon", "0.1",
               "--name", "synth_lin_e0.1", "--steps", "50", "--min-fall=-1e9").stdout
    folder = tmp_path / "results" / "perturbations" / "synth_lin_e0.1"
    assert f"wrote {folder}" in out
    again = _cli(tmp_path, "perturb", "results/src", "--dataset", "synth_lin", "--epsilon", "0.1",
                 "--name", "synth_lin_e0.1", "--steps", "5", ok=False)
    assert again.returncode == 2 and "already holds a perturbation" in again.stderr

    # the folder: weights (weights_only), provenance, contact sheet
    meta = yaml.safe_load((folder / "perturbation.yaml").read_text())
    state = torch.load(folder / "manipulation.pt", weights_only=True)
    assert set(state) == {k for k in manipulation((3,), 2).state_dict()}
    assert (folder / "contact_sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert meta["dataset"] == "synth_lin" and meta["epsilon"] == 0.1 and meta["training"]["steps"] == 50
    assert meta["dataset_options"] == {"ratio": 2.0, "n": 256, "data_seed": 0}
    dis, ent = meta["source"]["disentangled"][0], meta["source"]["entangled"][0]
    assert dis["mig"] >= ent["mig"] and dis["run_key"] != ent["run_key"]
    assert set(meta["losses"]["final"]) == {"rec_entangled", "rec_disentangled", "objective"}
    assert set(meta["losses"]["check"]["initial"]) == {"rec_entangled", "rec_disentangled", "objective"}
    assert "over-pruned restarts (fewer active units than factors) excluded" in out
    assert len(meta["weights"]["sha256"]) == 64 and meta["architecture"]["kind"] == "mlp"

    # the data: ‖x' − x‖∞ ≤ ε on every observation, factors and splits unchanged, the same x' on every load
    base = load("synth_lin", n=256)
    ds = load("synth_lin", n=256, perturbation=str(folder))
    x = _check_perturbed(ds, base, np.arange(256), 0.1)
    np.testing.assert_array_equal(load("synth_lin", n=256, perturbation=str(folder)).observations_at(np.arange(256)),
                                  x)

    # the declared CPU variants validate against the folders (relative to the working directory)
    _cli(tmp_path, "perturb", "results/src", "--dataset", "synth_lin", "--epsilon", "0.2", "--name", "synth_lin_e0.2",
         "--steps", "50")
    for path in cpu_studies:
        assert "restarts" in _cli(tmp_path, "validate", str(path)).stdout

    # one epoch of the perturbed study's variants (orig., mod., noise) through Ray Tune trials
    study = {"extends": str(cpu_studies[0]), "study": "e2e",
             "grid": {"model": ["beta_vae", "ae"], "seeds": 2},
             "overrides": {"synth_lin": {"n": 256, "epochs": 1}},
             "train": {"seeds_per_trial": 2}, "eval": {"metrics": ["mig"], "n_eval": 64},
             "resources": {"cpu": 1, "max_concurrent_trials": 2}}
    (tmp_path / "e2e.yaml").write_text(yaml.safe_dump(study))
    assert "16 restarts" in _cli(tmp_path, "validate", "e2e.yaml").stdout
    _cli(tmp_path, "submit", "e2e.yaml")
    from workers.store.views import connect

    rows = connect(str(tmp_path / "results" / "e2e")).execute(
        "SELECT json_extract_string(config, '$.dataset_options.perturbation') AS p, "
        "json_extract(config, '$.dataset_options.noise')::DOUBLE AS n, count(*), count(*) FILTER (status = 'ok') "
        "FROM runs GROUP BY ALL ORDER BY ALL").fetchall()
    assert sorted((r[0] is not None, r[1] or 0.0) for r in rows) == [(False, 0.0), (False, 0.2), (True, 0.0),
                                                                      (True, 0.0)]
    assert all(r[2] == r[3] == 4 for r in rows)


# ---- source selection and the objective check (no Ray: the task function called directly) --------------------

def _source_study(tmp_path: Path) -> Path:
    """A synth_lin β-VAE 'study' of 5 restarts with stored (untrained) weights; restart 4 has the highest MIG
    but keeps 1 active unit for 2 factors (over-pruned)."""
    from testing.synthetic_store import checkpoint_row
    from workers.checkpoint import save_torch
    from workers.models.vae import BatchedVAE
    from workers.store.layout import model_uri
    from workers.store.write import write_rows

    study = validate_study({"study": "src", "storage": str(tmp_path), "train": {"epochs": 2},
                            "grid": {"dataset": "synth_lin", "model": "beta_vae", "seeds": 5},
                            "overrides": {"synth_lin": {"n": 256}}})
    study_dir = tmp_path / "src"
    rows = []
    for r in study.restarts:
        vae = BatchedVAE(r.config, (3,))
        row = vae.layout.init_seed(torch.Generator().manual_seed(r.seed))
        save_torch(vae.layout.seed_state_dict(row[None], 0), model_uri(str(study_dir), r.run_key, 2))
        rows.append(checkpoint_row(r.run_key, 2, config_key=r.config_key, seed=r.seed, study="src",
                                   config=r.config.to_dict(), epochs=2, mig=0.1 + 0.2 * r.seed,
                                   active_units=1 if r.seed == 4 else 2))
    write_rows(str(study_dir), "checkpoints", rows)
    return study_dir


def _job(study_dir: Path, *extra: str) -> dict:
    import argparse

    from sweep.perturb import add_arguments, plan

    p = argparse.ArgumentParser()
    add_arguments(p)
    return plan(p.parse_args([str(study_dir), "--dataset", "synth_lin", "--epsilon", "0.1", "--name", "p",
                              "--steps", "3", "--batch-size", "32", *extra]))


def test_sources_exclude_overpruned_restarts_and_say_how_many(tmp_path: Path) -> None:
    from sweep.perturb import PerturbError, select_sources

    study_dir = _source_study(tmp_path)
    dis, ent, options, pruned = select_sources(str(study_dir), "synth_lin", 1)
    assert pruned == 1 and dis[0]["seed"] == 3 and ent[0]["seed"] == 0  # seed 4 (MIG 0.9, 1 unit) left out
    assert options["n"] == 256
    with pytest.raises(PerturbError, match="1 over-pruned restarts .fewer than 2 active units. were excluded"):
        select_sources(str(study_dir), "synth_lin", 3)
    assert _job(study_dir)["excluded_overpruned"] == 1


def test_objective_check_known_answers() -> None:
    from workers.perturbation.train import objective_check

    before = {"rec_entangled": 1.0, "rec_disentangled": 1.0, "objective": 0.0}
    fell = {"rec_entangled": 0.9, "rec_disentangled": 1.1, "objective": -0.2}
    check = objective_check(before, fell, 0.05, 128)
    assert check["fall"] == pytest.approx(0.2) and check["relative_fall"] == pytest.approx(0.2) and check["passed"]
    assert not objective_check(before, fell, 0.25, 128)["passed"]
    assert not objective_check(before, before, 0.05, 128)["passed"]  # unchanged: the perturbation does nothing
    assert not objective_check(fell, before, 0.0, 128)["passed"]  # rose


def test_a_manipulation_whose_objective_did_not_fall_writes_nothing(tmp_path: Path) -> None:
    from sweep.perturb import PerturbError, outcome
    from workers.perturbation.train import make_perturbation

    study_dir = _source_study(tmp_path)
    job = _job(study_dir, "--min-fall", "100")  # no 3-step run lowers the objective by 100 × L_rec
    result = make_perturbation(job)
    assert result["written"] is False and not Path(job["out"]).exists()
    with pytest.raises(PerturbError, match=r"(?s)did not work, nothing written.*objective \(L_rec entangled − "
                       r"disentangled\) .* -> .*below the required fall of 10000.0% \(--min-fall\)"):
        outcome(job, result)
    check = result["losses"]["check"]
    assert not check["passed"] and check["min_relative_fall"] == 100
    assert set(check["initial"]) == set(check["final"]) == {"rec_entangled", "rec_disentangled", "objective"}
    assert check["initial"]["objective"] == pytest.approx(
        check["initial"]["rec_entangled"] - check["initial"]["rec_disentangled"])

    job = _job(study_dir, "--min-fall", "-100")  # any change accepted: the folder records both values
    result = make_perturbation(job)
    assert result["written"] is True and f"wrote {job['out']}" in outcome(job, result)
    meta = read_meta(job["out"])[1]
    saved = meta["losses"]["check"]
    assert saved["initial"] == pytest.approx(check["initial"])  # the same fixed batches and latent samples
    assert saved["passed"] and meta["source"]["excluded_overpruned"] == 1
