"""One stored restart opened up: its checkpoint row, its model at a saved epoch, and its dataset.

The model is rebuilt from the row's `config` JSON with the trainer's builder and its state dict
`<study_uri>/models/<run_key>/e<epoch>.pt` loaded with `weights_only=True` (the evaluation stage's
loader, `workers.evaluation`). `orthosweep.load_restart` and `orthosweep show` use this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from workers.trial import RestartConfig


class UnknownRestart(KeyError):
    """No such restart, or no checkpoint of it at that epoch (the message names those that exist)."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class SavedRestart:
    """A restart at one saved epoch.

    model: a `workers.models.protocol.SeedModel` (torch; `encode` and `decode` without a seed dimension);
    dataset: a `workers.data.Dataset`; row: the restart's `checkpoints` row at `epoch` (column -> value);
    config: the whole restart definition (what `config_key` hashes, plus the seed).
    """

    study_uri: str
    run_key: str
    epoch: int
    row: dict[str, Any]
    config: dict[str, Any]
    model: Any
    dataset: Any

    @property
    def latent_dim(self) -> int:
        return int(self.model.latent_dim)

    def posterior(self, x: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """x (N, *obs) (array-like) -> posterior mean (N, d) and its other parameters ({} for a
        deterministic encoder, {"logvar": (N, d)}, or {"scale_tril": (N, d, d)}), as float32 arrays."""
        import torch

        with torch.no_grad():
            mu, post = self.model.encode(_tensor(x))
        return mu.cpu().numpy(), {k: v.cpu().numpy() for k, v in post.items()}

    def encode(self, x: Any) -> np.ndarray:
        """x (N, *obs) (array-like) -> posterior mean (N, d) float32, the code the metrics read."""
        return self.posterior(x)[0]

    def decode(self, z: Any) -> np.ndarray:
        """z (N, d) (array-like) -> the decoder's likelihood mean (N, *obs) float32 (pixels in [0, 1] for
        Bernoulli decoders)."""
        import torch

        with torch.no_grad():
            return self.model.decode(_tensor(z)).cpu().numpy()

    def heldout(self, n: int, offset: int = 0) -> np.ndarray:
        """The first `n` held-out (test split) observations after `offset`, (n, *obs) float32: the points
        the checkpoint metrics were computed on."""
        idx = self.dataset.split_indices("test")[offset:offset + n]
        return self.dataset.observations_at(idx)


def _tensor(x: Any) -> Any:
    import torch

    return torch.as_tensor(np.asarray(x, dtype=np.float32) if not isinstance(x, torch.Tensor) else x,
                           dtype=torch.float32)


def saved_epochs(study_uri: str, run_key: str) -> list[int]:
    """The epochs whose state dict is stored for `run_key` (`models/<run_key>/e<epoch>.pt`), ascending."""
    import pyarrow.fs as pafs

    from workers.store.layout import filesystem, join_uri

    fs, path = filesystem(join_uri(study_uri, "models", run_key))
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    out = []
    for i in infos:
        name = i.base_name
        if name.startswith("e") and name.endswith(".pt") and name[1:-3].isdigit():
            out.append(int(name[1:-3]))
    return sorted(out)


def checkpoint_row(con: duckdb.DuckDBPyConnection, run_key: str, epoch: int | None = None) -> dict[str, Any]:
    """The `checkpoints` row of `run_key` at `epoch` (None: its last recorded checkpoint). Raises KeyError
    naming the restarts or epochs that exist."""
    if epoch is None:
        cur = con.execute("SELECT * FROM runs WHERE run_key = ? OR run_key LIKE ? || '%' ORDER BY run_key",
                          [run_key, run_key])
    else:
        cur = con.execute("SELECT * FROM checkpoints WHERE (run_key = ? OR run_key LIKE ? || '%') AND epoch = ?",
                          [run_key, run_key, int(epoch)])
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    exact = [r for r in rows if r["run_key"] == run_key]
    rows = exact or rows
    if len({r["run_key"] for r in rows}) > 1:
        keys = ", ".join(sorted(r["run_key"] for r in rows))
        raise UnknownRestart(f"run key prefix {run_key!r} is ambiguous: {keys}")
    if rows:
        return rows[0]
    known = con.execute("SELECT list(epoch ORDER BY epoch) FROM checkpoints WHERE run_key = ?", [run_key]).fetchone()
    if known and known[0]:
        raise UnknownRestart(f"restart {run_key} has no checkpoint at epoch {epoch}; recorded epochs: {known[0]}")
    n = con.execute("SELECT count(DISTINCT run_key) FROM checkpoints").fetchone()[0]
    raise UnknownRestart(f"no restart {run_key!r} in this study ({n} restarts recorded; "
                   "`orthosweep sql STUDY \"SELECT run_key, model, seed FROM runs\"` lists them)")


def open_restart(con: duckdb.DuckDBPyConnection, study_uri: str, run_key: str, epoch: int | None = None,
                 device: str = "cpu") -> SavedRestart:
    """The restart `run_key` (or an unambiguous prefix of it) at `epoch`: its last recorded checkpoint
    when None. Raises KeyError for an unknown restart or epoch, FileNotFoundError when no state dict was
    saved at that epoch (naming the epochs that were)."""
    from workers.evaluation import load_dataset, load_seed_model
    from workers.store.layout import model_uri

    row = checkpoint_row(con, run_key, epoch)
    run_key, epoch = row["run_key"], int(row["epoch"])
    raw = row.get("config")
    if raw is None:
        from analysis.frames import restart_config

        config = restart_config(con, run_key)
    else:
        config = json.loads(raw)
    saved = saved_epochs(study_uri, run_key)
    if epoch not in saved:
        raise FileNotFoundError(f"no saved model of restart {run_key} at epoch {epoch} (expected "
                                f"{model_uri(study_uri, run_key, epoch)}); saved epochs: {saved or 'none'}")
    cfg = RestartConfig.from_dict(config)
    dataset = load_dataset(cfg)
    import torch

    model = load_seed_model(study_uri, run_key, epoch, cfg, dataset, torch.device(device))
    return SavedRestart(study_uri, run_key, epoch, row, config, model, dataset)
