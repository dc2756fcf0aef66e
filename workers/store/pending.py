"""Which stored checkpoints still lack which metrics: the evaluation stage's bookkeeping (design.md §7).

A checkpoint (run_key, epoch) can be evaluated when its training row (the `trained` view) has status `ok`
and its weights are stored (`models/<run_key>/e<epoch>.pt`). A checkpoint-scope metric is present when
the training row computed it (`evaluated` lists it; rows written before that column existed count a
metric present when its first column is not null) or when an evaluation of it was written after the
training row (ok or failed: a failed evaluation is recorded, not retried, unless forced). A
configuration-scope metric (UDR) is pending for a (config_key, epoch) when any of its evaluable restarts
lacks it, and is then computed for all of them (the score of each depends on the whole set).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow.fs as pafs

from workers.metrics.registry import METRICS
from workers.store.layout import location
from workers.store.views import views_connection


@dataclass(frozen=True)
class StoredCheckpoint:
    """One restart's checkpoint in the store: its identity columns and its configuration (JSON)."""

    run_key: str
    config_key: str
    dataset: str
    model: str
    seed: int
    epoch: int
    config: str


@dataclass
class Pending:
    """What `evaluate` has to compute. checkpoint_jobs: checkpoint -> its missing checkpoint-scope metrics;
    group_jobs: (config_key, epoch, metric) -> the group's evaluable checkpoints (configuration scope)."""

    checkpoint_jobs: dict[StoredCheckpoint, tuple[str, ...]] = field(default_factory=dict)
    group_jobs: dict[tuple[str, int, str], list[StoredCheckpoint]] = field(default_factory=dict)
    evaluable: int = 0  # ok checkpoints with stored weights (within the epochs asked for)
    without_weights: int = 0  # ok checkpoints whose weights are not in the store

    @property
    def empty(self) -> bool:
        return not self.checkpoint_jobs and not self.group_jobs


def stored_models(study_uri: str) -> set[tuple[str, int]]:
    """(run_key, epoch) of every stored per-seed state dict (`models/<run_key>/e<epoch>.pt`)."""
    loc = location(study_uri)
    sel = pafs.FileSelector(f"{loc.path}/models", recursive=True, allow_not_found=True)
    out = set()
    for info in loc.fs.get_file_info(sel):
        name = info.base_name
        if info.type == pafs.FileType.File and name.startswith("e") and name.endswith(".pt"):
            run_key = info.path.rsplit("/", 2)[-2]
            try:
                out.add((run_key, int(name[1:-3])))
            except ValueError:
                continue
    return out


_FIRST_COLUMN = {name: next(iter(m.columns)) for name, m in METRICS.items()}


def pending_evaluations(study_uri: str, metrics: Iterable[str], *, epochs: Iterable[int] | None = None,
                        force: bool = False) -> Pending:
    """The evaluations of `metrics` the store lacks (all of them with `force`), at `epochs` (None: all)."""
    metrics = list(dict.fromkeys(metrics))
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"--metrics: unknown metric(s) {unknown}; available: {', '.join(METRICS)}")
    wanted_epochs = None if epochs is None else {int(e) for e in epochs}
    models = stored_models(study_uri)
    con = views_connection([location(study_uri)], views=("trained", "evaluations"))
    try:
        present = ", ".join(f'"{_FIRST_COLUMN[m]}" IS NOT NULL' for m in metrics) or "NULL"
        trained = con.execute(
            "SELECT run_key, config_key, dataset, model, seed, epoch, config, evaluated, written_at, "
            f"[{present}] FROM trained WHERE status = 'ok'").fetchall()
        evaluated = con.execute(
            "SELECT e.run_key, e.epoch, e.metric FROM evaluations AS e JOIN trained AS t "
            "USING (study, run_key, epoch) WHERE e.written_at > t.written_at").fetchall()
    finally:
        con.close()
    fresh: dict[tuple[str, int], set[str]] = {}
    for rk, ep, m in evaluated:
        fresh.setdefault((rk, int(ep)), set()).add(m)
    out = Pending()
    groups: dict[tuple[str, int], list[tuple[StoredCheckpoint, set[str]]]] = {}
    for rk, ck, ds, mdl, seed, ep, config, listed, _, nonnull in trained:
        ep = int(ep)
        if wanted_epochs is not None and ep not in wanted_epochs:
            continue
        if (rk, ep) not in models:
            out.without_weights += 1
            continue
        out.evaluable += 1
        cp = StoredCheckpoint(rk, ck, ds, mdl, int(seed), ep, config if isinstance(config, str) else json.dumps(config))
        have = set(fresh.get((rk, ep), ()))
        have |= set(listed) if listed is not None else {m for m, v in zip(metrics, nonnull, strict=True) if v}
        missing = tuple(m for m in metrics if METRICS[m].scope == "checkpoint" and (force or m not in have))
        if missing:
            out.checkpoint_jobs[cp] = missing
        groups.setdefault((ck, ep), []).append((cp, have))
    for m in metrics:
        if METRICS[m].scope != "configuration":
            continue
        for (ck, ep), members in groups.items():
            if force or any(m not in have for _, have in members):
                out.group_jobs[(ck, ep, m)] = [cp for cp, _ in members]
    return out
