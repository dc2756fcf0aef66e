"""The README's quickstart, end to end through real Ray, PyTorch, Parquet and DuckDB (issue 2).

Runs studies/quickstart.yaml exactly as shipped (only the storage is redirected) in a subprocess, then
checks the papers' qualitative ordering on its table and that submitting it again trains and writes nothing.
Issue 18: the quickstart shows the finding it advertises, through `orthosweep sql` and `orthosweep stats`:
no over-pruned beta-VAEs to speak of, a significant negative pooled rho(DtO, MIG), a real entangled-vs-disentangled
split, and beta-VAE restarts that reach the polarised regime.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workers.store.views import connect

ROOT = Path(__file__).resolve().parent.parent


def _submit(storage: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweep.cli", "submit", str(ROOT / "studies" / "quickstart.yaml"),
                           "--storage", str(storage)], capture_output=True, text=True, timeout=900, cwd=ROOT)


def _cli_json(*args: str) -> object:
    """The JSON output of one read-only `orthosweep` command (the stable interface), run as a subprocess."""
    done = subprocess.run([sys.executable, "-m", "sweep.cli", *args, "--format", "json"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.slow
def test_quickstart_orders_models_like_the_paper_and_resubmits_idempotently(tmp_path: Path) -> None:
    first = _submit(tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "DtO" in first.stdout and "synth_lin" in first.stdout
    study_dir = tmp_path / "quickstart"
    assert (study_dir / "plots" / "dto_vs_mig.png").stat().st_size > 10_000

    con = connect(str(study_dir))
    dto = dict(con.execute("SELECT model, avg(dto) FROM runs WHERE epoch = epochs GROUP BY model").fetchall())
    n_runs, = con.execute("SELECT count(*) FROM runs WHERE epoch = epochs AND status = 'ok'").fetchone()
    rows_before, = con.execute("SELECT count(*) FROM checkpoints_raw").fetchone()
    assert n_runs == 18
    # Rolínek et al. Table 2: the beta-VAE decoder is the closest to orthogonal on Synth. Lin.
    assert dto["beta_vae"] < dto["ae"] and dto["beta_vae"] < dto["beta_vae_sigma"], dto
    assert dto["beta_vae"] < 0.05, dto
    # epoch 0 (random decoder) is recorded for every restart
    n_epoch0, = con.execute("SELECT count(*) FROM checkpoints WHERE epoch = 0").fetchone()
    assert n_epoch0 == 18

    # Issue 18, through the CLI. (1) At least 5 of the 6 beta-VAE restarts keep a unit per factor (synth_lin
    # has 2), i.e. at most one is over-pruned, and (4) they reach the polarised regime (Delta_KL < 3 %).
    bvae = _cli_json("sql", str(study_dir),
                     "SELECT seed, active_units, polarized_fraction FROM runs "
                     "WHERE model = 'beta_vae' AND epoch = epochs AND status = 'ok' ORDER BY seed")
    assert len(bvae) == 6, bvae
    assert sum(r["active_units"] is not None and r["active_units"] >= 2 for r in bvae) >= 5, bvae
    assert sum(r["polarized_fraction"] is not None and r["polarized_fraction"] > 0 for r in bvae) >= 5, bvae

    stats = _cli_json("stats", str(study_dir))
    # (1) beta-VAE's mean DtO is the lowest of the three models, as `orthosweep stats` reports it too
    by_model = {g["model"]: g for g in stats["groups"]}
    assert set(by_model) == {"beta_vae", "ae", "beta_vae_sigma"}, list(by_model)
    assert min(by_model, key=lambda m: by_model[m]["dto_mean"]) == "beta_vae", \
        {m: g["dto_mean"] for m, g in by_model.items()}
    # (2) the pooled Spearman rho(DtO, MIG) across restarts is negative and significant
    pooled = [c for c in stats["correlations"] if c["group"] == "(pooled)" and c["metric"] == "mig"]
    assert len(pooled) == 1, stats["correlations"]
    assert pooled[0]["spearman"] is not None and pooled[0]["spearman"] < 0, pooled
    assert pooled[0]["spearman_p"] is not None and pooled[0]["spearman_p"] < 0.05, pooled
    # (3) the entangled-vs-disentangled split compares at least 2 vs 2 restarts in every group, beta-VAE included
    splits = {s["model"]: s for s in stats["restart_statistics"]}
    assert "beta_vae" in splits, list(splits)
    for model, split in splits.items():
        assert split["n_disentangled"] >= 2 and split["n_entangled"] >= 2, (model, split)

    second = _submit(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    rows_after, = connect(str(study_dir)).execute("SELECT count(*) FROM checkpoints_raw").fetchone()
    assert rows_after == rows_before
    dup, = connect(str(study_dir)).execute(
        "SELECT count(*) FROM (SELECT run_key, epoch FROM checkpoints GROUP BY ALL HAVING count(*) > 1)").fetchone()
    assert dup == 0
