"""The README's quickstart, end to end through real Ray, PyTorch, Parquet and DuckDB (issue 2).

Runs studies/quickstart.yaml exactly as shipped (only the storage is redirected) in a subprocess, then
checks the papers' qualitative ordering on its table and that submitting it again trains and writes nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workers.store.views import connect

ROOT = Path(__file__).resolve().parent.parent


def _submit(storage: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweep.cli", "submit", str(ROOT / "studies" / "quickstart.yaml"),
                           "--storage", str(storage)], capture_output=True, text=True, timeout=900, cwd=ROOT)


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

    second = _submit(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    rows_after, = connect(str(study_dir)).execute("SELECT count(*) FROM checkpoints_raw").fetchone()
    assert rows_after == rows_before
    dup, = connect(str(study_dir)).execute(
        "SELECT count(*) FROM (SELECT run_key, epoch FROM checkpoints GROUP BY ALL HAVING count(*) > 1)").fetchone()
    assert dup == 0
