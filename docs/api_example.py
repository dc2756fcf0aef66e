"""orthosweep's Python API from submission to a figure, on a study small enough for a laptop (~1 minute).

    python docs/api_example.py [OUT_DIR]        (default: ./results_api_example)

1. submit a tiny study (synth_lin, beta-VAE vs AE, 4 seeds each, 3 epochs) from a Python mapping;
2. query its store with SQL (DuckDB) and as a pandas frame of restarts;
3. open the best restart by MIG and decode a traversal of each latent around an encoded held-out point;
4. draw DtO vs MIG over the restarts and the traversal into OUT_DIR/api_example.png.
The test suite runs this file (tests/test_api.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import orthosweep

STUDY = {
    "study": "api_example",
    "grid": {"dataset": ["synth_lin"], "model": ["beta_vae", "ae"], "beta": [0.015], "seeds": 4},
    "overrides": {"synth_lin": {"n": 2000}},
    "train": {"epochs": 3, "batch_size": 64, "checkpoints": [0, 3], "seeds_per_trial": 4, "trace_every": 10},
    "eval": {"metrics": ["dto", "mig", "polarized"], "n_eval": 500},
    "resources": {"cpu": 1, "max_concurrent_trials": 2},
}


def main(out_dir: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out = Path(out_dir)
    # 1. Train every restart not already in the store (a second run trains nothing).
    outcome = orthosweep.submit(STUDY, storage=str(out))
    print(f"{outcome.done}/{outcome.total} restarts done, {outcome.failed} failed -> {outcome.study_dir}")

    # 2. SQL over the views (read-only), and one row per restart as pandas.
    con = orthosweep.open(outcome.study_dir)
    print(con.sql("SELECT model, count(*) AS n, avg(dto) AS dto, avg(mig) AS mig FROM runs "
                  "GROUP BY model ORDER BY model").df().to_string(index=False))
    print("trace rows:", con.sql("SELECT count(*) FROM trace").fetchone()[0])
    runs = orthosweep.restarts(outcome.study_dir)

    # 3. The best restart by MIG: encode held-out points, traverse each latent around the first code.
    best = runs.sort_values("mig", ascending=False).iloc[0]
    restart = orthosweep.load_restart(outcome.study_dir, best.run_key)
    x = restart.heldout(200)
    z = restart.encode(x)  # (200, latent_dim) posterior means
    values = np.linspace(-2.5, 2.5, 9)
    fig, axes = plt.subplots(1, 1 + restart.latent_dim, figsize=(4 * (1 + restart.latent_dim), 3.6))
    for model, g in runs.groupby("model"):
        axes[0].scatter(g["mig"], g["dto"], label=model)
    axes[0].set(xlabel="MIG", ylabel="DtO", title="restarts at their last checkpoint")
    axes[0].legend()
    for j in range(restart.latent_dim):
        codes = np.repeat(z[:1], len(values), axis=0)
        codes[:, j] = z[0, j] + values
        decoded = restart.decode(codes)  # (9, 3): synth_lin's observations are 3-vectors
        for c in range(decoded.shape[1]):
            axes[1 + j].plot(values, decoded[:, c], marker=".", label=f"x{c}")
        axes[1 + j].set(xlabel=f"z{j} - z{j}(x0)", title=f"best restart {restart.run_key[:8]}: z{j}")
    axes[-1].legend()
    fig.tight_layout()
    png = out / "api_example.png"
    fig.savefig(png, dpi=90)
    print("figure:", png)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results_api_example")
