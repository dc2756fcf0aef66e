"""Which restarts are complete, diverged or failed: one query on the deduplicated `checkpoints` view.

A restart's outcome is its row at the final epoch (`epoch = epochs`) as the `checkpoints` view keeps it
(the latest write wins, design.md §7): `ok` or `diverged` there means finished, `failed` means its trial
failed for good and `resume` retries it, no row means not finished. The `runs` view shows the same row for
a finished restart, so `submit`, `resume`, `status` and `stats` agree. A finished restart is trained
again only when the caller gives its checkpoint count and the store lacks one of its epochs (a file lost
or torn after it was written): the retraining writes every row again and the views keep one per epoch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from workers.store.files import Partition
from workers.store.layout import location
from workers.store.schema import DONE_STATUSES
from workers.store.views import views_connection

FINAL_STATES_SQL = """
SELECT f.run_key, f.status, f.error, n.epochs_stored
FROM (SELECT run_key, status, error FROM checkpoints WHERE epoch = epochs) AS f
JOIN (SELECT run_key, count(DISTINCT epoch) AS epochs_stored FROM checkpoints GROUP BY run_key) AS n USING (run_key)
"""


@dataclass(frozen=True)
class RestartState:
    """The store's verdict on one restart: its final-epoch status and error, if any."""

    status: str  # ok | diverged | failed
    error: str | None
    epochs_stored: int = 1  # distinct checkpoint epochs the store holds for it

    @property
    def done(self) -> bool:
        return self.status in DONE_STATUSES


def final_states(study_uri: str, run_keys: Iterable[str] | None = None,
                 partition: Partition | None = None) -> dict[str, RestartState]:
    """run_key -> state at its final epoch, for the restarts that have one (of `run_keys` when given)."""
    con = views_connection([location(study_uri)], partition, views=("checkpoints",))
    try:
        rows = con.execute(FINAL_STATES_SQL).fetchall()
    finally:
        con.close()
    wanted = set(run_keys) if run_keys is not None else None
    return {rk: RestartState(st, err, int(n)) for rk, st, err, n in rows if wanted is None or rk in wanted}


def completed_run_keys(study_uri: str, run_keys: Iterable[str] | None = None,
                       partition: Partition | None = None, checkpoints: Mapping[str, int] | None = None) -> set[str]:
    """Restarts whose final checkpoint is stored with status ok or diverged (never trained again); with
    `checkpoints` (run_key -> its number of checkpoint epochs), only those that also have every epoch."""
    return {rk for rk, s in final_states(study_uri, run_keys, partition).items()
            if s.done and (checkpoints is None or s.epochs_stored >= checkpoints.get(rk, 0))}
