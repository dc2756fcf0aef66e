"""The functions of the public API (re-exported by `orthosweep`); heavy imports happen inside them."""

from __future__ import annotations

import copy
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orthosweep.connection import Connection

if TYPE_CHECKING:
    import pandas as pd

    from analysis.restart import SavedRestart


def open(study_dir: str | os.PathLike[str], study: str | list[str] | None = None) -> Connection:  # noqa: A001
    """A read-only DuckDB connection over a study's store, with the views of `orthosweep views`:
    checkpoints, runs, groups, trace, evaluations (and the raw tables they deduplicate).

    study_dir: a study folder `<storage>/<study>` (local path or URI such as s3://bucket/prefix/study), or a
    storage root together with `study` (a name or names; several studies are read as one).
    `.sql(query)` results fetch like a cursor (`.fetchone()`, `.fetchall()`) and convert like a DuckDB
    relation (`.df()` pandas, `.pl()` polars if installed, `.arrow()`); `.duckdb` is DuckDB's connection.
    Statements that would write (INSERT, CREATE, COPY ...) fail: the store is written only by training.
    Raises FileNotFoundError when there is no such study.
    """
    from workers.store.views import connect

    return Connection(connect(os.fspath(study_dir), study))


def restarts(study_dir: str | os.PathLike[str], epoch: int | None = None, *, ok_only: bool = True) -> pd.DataFrame:
    """One row per restart (pandas): identity (run_key, config_key, dataset, model, seed, hparams ...),
    held-out losses and every scalar metric, plus `mig_per_factor` and `kl_per_dim` lists.

    epoch: the checkpoint epoch to take (None: each restart's last recorded checkpoint, the `runs` view);
    ok_only: only rows with status 'ok' (diverged and failed restarts left out).
    """
    from analysis.frames import restarts as frame

    return frame(open(study_dir).duckdb, epoch, ok_only=ok_only)


@dataclass
class Outcome:
    """What `submit` did: counts over the study's restarts at the end, and where its store is.

    total/done/failed: restarts of the study, complete (final checkpoint stored), and failed;
    trained: restarts whose trials this call started (0 when the store already had them all);
    seconds: wall time of the call; evaluated: rows the evaluation stage wrote after training;
    eval_errors: evaluation tasks that raised; log: what the driver printed (its progress lines).
    """

    study_dir: str
    total: int
    done: int
    failed: int
    trained: int
    seconds: float
    evaluated: int = 0
    eval_errors: tuple[str, ...] = ()
    log: str = field(default="", repr=False)

    @property
    def ok(self) -> bool:
        """Every restart complete, none failed, no evaluation task failed."""
        return self.done == self.total and not self.failed and not self.eval_errors


def submit(study: str | os.PathLike[str] | Mapping[str, Any] | Any, *, storage: str | None = None,
           address: str | None = None, max_concurrent: int | None = None, trainable: str | None = None,
           resume: bool = False, echo: bool = False, **overrides: Any) -> Outcome:
    """Run a study to completion, as `orthosweep submit` does, and return its Outcome (nothing printed
    unless `echo`). Restarts already complete in the store are not trained again.

    study: a study YAML file, a mapping with the same fields, or a `sweep.spec.Study`;
    storage: where `<storage>/<study>` goes (overrides the file's `storage`);
    address: a Ray cluster (auto, ray://HEAD:10001, HEAD:6379); None: an in-process Ray on this machine;
    max_concurrent: at most this many trials at once; trainable: `module:function` of the Tune trainable;
    resume: continue the study's latest Tune experiment first (as `orthosweep resume`);
    echo: print the driver's progress lines to stdout as they come;
    overrides: study fields deep-merged over the file's, e.g. `train={"epochs": 2}, grid={"seeds": 2}`
    (mappings merge key by key, lists and scalars replace).

    Unlike the command, it prints no summary table and draws no plots at the end (`open`, `restarts` and
    `orthosweep plots` give them). Raises sweep.errors.SpecError for an invalid study (nothing scheduled) and
    sweep.preflight.PreflightError for an unreachable address, unwritable storage or resources no node has.
    """
    import sys

    from sweep.driver import DEFAULT_TRAINABLE, run_sweep

    s = _study(study, storage, overrides)
    buf = io.StringIO()
    out = _Tee(buf, sys.stdout) if echo else buf
    r = run_sweep(s, address=address, max_concurrent=max_concurrent, resume=resume,
                  trainable=trainable or DEFAULT_TRAINABLE, out=out)
    return Outcome(study_dir=s.study_uri, total=r.total, done=r.done, failed=r.failed, trained=r.trained,
                   seconds=r.seconds, evaluated=r.evaluated, eval_errors=tuple(r.eval_errors), log=buf.getvalue())


def _study(study: Any, storage: str | None, overrides: dict[str, Any]) -> Any:
    """A validated sweep.spec.Study from a file, a mapping or a Study, with `overrides` and `storage`."""
    from sweep.spec import Study, deep_merge, load_study, validate_study

    if isinstance(study, str | os.PathLike):
        return load_study(study, storage=storage, overrides=overrides or None)
    if isinstance(study, Study):
        if not overrides and storage is None:
            return study
        data = deep_merge(copy.deepcopy(study.normalized), overrides)
        source = study.source
    elif isinstance(study, Mapping):
        data, source = deep_merge(dict(study), overrides), "study"
    else:
        raise TypeError(f"study: expected a YAML path, a mapping or a sweep.spec.Study; got {type(study).__name__}")
    if storage is not None:
        data["storage"] = storage
    return validate_study(data, source=source)


class _Tee(io.TextIOBase):
    def __init__(self, *streams: Any):
        self.streams = streams

    def write(self, s: str) -> int:
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self) -> None:
        for st in self.streams:
            st.flush()


def load_restart(study_dir: str | os.PathLike[str], run_key: str, epoch: int | None = None, *,
                 device: str = "cpu") -> SavedRestart:
    """One stored restart at a saved epoch, ready to use: `encode(x)` (posterior means), `posterior(x)`,
    `decode(z)` (numpy in, numpy out), `heldout(n)` (its held-out points), `.dataset` (a workers.data
    Dataset: observations_at, factors_at, split_indices), `.model` (the torch model), `.row` (its
    checkpoints row: every metric) and `.config` (the restart's definition).

    run_key: the restart's key or an unambiguous prefix of it; epoch: a checkpoint epoch whose state dict
    was saved (None: the restart's last recorded checkpoint). Raises KeyError for an unknown restart or
    epoch and FileNotFoundError when that epoch's weights were not saved.
    """
    from analysis.restart import open_restart

    uri = os.fspath(study_dir)
    return open_restart(open(uri).duckdb, uri, run_key, epoch, device=device)



def show(study_dir: str | os.PathLike[str], run_key: str, epoch: int | None = None,
         out: str | None = None) -> dict[str, str]:
    """Draw one stored restart as `orthosweep show` does and write the files: reconstructions.png,
    prior_samples.png, traversals_1d.png (every active latent around encoded held-out points),
    traversal_2d.png (its two highest-KL latents) and traversals.gif (where Pillow is installed).

    out: the folder (default `<study_dir>/show/<run_key>/e<epoch>`). Returns file name -> path written.
    """
    from analysis.show import write_views

    return write_views(os.fspath(study_dir), run_key, epoch, out)
