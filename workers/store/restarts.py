"""Which restarts are complete, diverged or failed: one query on the deduplicated `checkpoints` view.

A restart's outcome is its row at the final epoch (`epoch = epochs`) as the `checkpoints` view keeps it
(the latest write wins, design.md §7): `ok` or `diverged` there means complete (never trained again),
`failed` means its trial failed for good and `resume` retries it, no row means not finished. The `runs`
view shows the same row for a finished restart, so `submit`, `resume`, `status` and `stats` agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from workers.store.files import Partition
from workers.store.layout import location
from workers.store.schema import DONE_STATUSES
from workers.store.views import views_connection

FINAL_STATES_SQL = "SELECT run_key, status, error FROM checkpoints WHERE epoch = epochs"


@dataclass(frozen=True)
class RestartState:
    """The store's verdict on one restart: its final-epoch status and error, if any."""

    status: str  # ok | diverged | failed
    error: str | None

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
    return {rk: RestartState(st, err) for rk, st, err in rows if wanted is None or rk in wanted}


def completed_run_keys(study_uri: str, run_keys: Iterable[str] | None = None,
                       partition: Partition | None = None) -> set[str]:
    """Restarts whose final checkpoint is stored with status ok or diverged (never trained again)."""
    return {rk for rk, s in final_states(study_uri, run_keys, partition).items() if s.done}
