"""`orthosweep status`: restarts done / running / failed / remaining per (dataset, model).

Done and failed come from the Parquet store (final-epoch rows); running comes from the Tune state the
driver publishes (`tune/driver.json`, refreshed every few seconds). Whether the driver runs at all comes from
its lease (`driver.lease`, sweep.lease): its heartbeat's age and, on the driver's host, its pid. All are
readable while a sweep runs.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from sweep.lease import STALE_AFTER_S, describe_lease, lease_state, read_lease
from workers.store.layout import read_driver_state
from workers.store.plan import Plan
from workers.store.restarts import final_states

if TYPE_CHECKING:
    from sweep.spec import Study


def format_seconds(s: float) -> str:
    """Seconds as H:MM:SS."""
    s = max(0, int(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def study_status(study: Study, now: float | None = None) -> str:
    """The status table of a validated study (see `status_text`)."""
    cells = {r.run_key: (r.config.dataset, r.config.model) for r in study.restarts}
    return status_text(study.name, study.study_uri, cells, now)


def plan_status(plan: Plan, study_uri: str, now: float | None = None) -> str:
    """The status table from the study folder's `restarts.json` (no spec validation: see workers.store.plan)."""
    return status_text(plan.study, study_uri, {r.run_key: (r.dataset, r.model) for r in plan.restarts}, now)


def status_text(name: str, study_uri: str, cell_of: dict[str, tuple[str, str]], now: float | None = None) -> str:
    """Done / running / failed / remaining per (dataset, model) of the planned restarts `cell_of`
    (run_key -> (dataset, model)), plus the driver's state and the first failure."""
    now = time.time() if now is None else now
    states = final_states(study_uri, list(cell_of))
    driver = read_driver_state(study_uri)
    lease = read_lease(study_uri)
    leased = lease_state(lease, now) if lease is not None else None
    live = leased == "running" if lease is not None else bool(
        driver and not driver.get("finished") and now - driver.get("heartbeat", 0) < STALE_AFTER_S)
    running_keys = {k for keys in (driver or {}).get("running", {}).values() for k in keys} if live else set()

    counts: dict[tuple[str, str], Counter[str]] = {}
    for rk, cell in cell_of.items():
        c = counts.setdefault(cell, Counter())
        c["total"] += 1
        st = states.get(rk)
        if st is not None and st.done:
            c["done"] += 1
        elif rk in running_keys:
            c["running"] += 1
        elif st is not None and st.status == "failed":
            c["failed"] += 1
        else:
            c["remaining"] += 1
    head = ("dataset", "model", "total", "done", "running", "failed", "remaining")
    rows = [head] + [(d, m, *(str(c[k]) for k in head[2:])) for (d, m), c in sorted(counts.items())]
    tot = Counter()
    for c in counts.values():
        tot.update(c)
    rows.append(("all", "", *(str(tot[k]) for k in head[2:])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [f"study {name} at {study_uri}"]
    lines += ["  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True)))
              for r in rows]
    if lease is not None and not live:
        resume = f"orthosweep resume {study_uri}" + (" --force" if leased == "stale" else "")
        lines.append(f"driver: {'dead' if leased == 'dead' else 'not running (no heartbeat)'}: its lease names "
                     f"{describe_lease(lease, now)}"
                     + ("; that pid no longer runs on this host" if leased == "dead" else "")
                     + f"; continue with `{resume}`" + (" if it is dead" if leased == "stale" else ""))
    elif live:
        beat = (lease or driver or {}).get("heartbeat", now)
        who = lease or driver or {}
        experiment = f", experiment {driver.get('experiment')}" if driver and not driver.get("finished") else ""
        lines.append(f"driver: running on {who.get('host')} (pid {who.get('pid')}){experiment}, up "
                     f"{format_seconds(now - who.get('started', now))}, last heartbeat {now - beat:.0f} s ago")
    elif driver is None:
        lines.append("driver: no sweep has run yet")
    else:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(driver.get("heartbeat", 0)))
        state = "finished" if driver.get("finished") else "not running (stopped or killed)"
        lines.append(f"driver: {state}; last seen {when}"
                     + ("" if driver.get("finished") else f"; continue with `orthosweep resume {study_uri}`"))
    failed = [(rk, st.error) for rk, st in states.items() if st.status == "failed"]
    if failed:
        first = (failed[0][1] or "").strip().splitlines()
        lines.append(f"failed restarts: {len(failed)}; e.g. {failed[0][0]}: {first[-1] if first else '?'}")
    return "\n".join(lines)
