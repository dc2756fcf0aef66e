"""orthosweep's Python API: run a restart study and analyse it from a notebook or a script.

    import orthosweep

    outcome = orthosweep.submit("studies/quickstart.yaml", storage="results")  # trains (local Ray)
    con = orthosweep.open(outcome.study_dir)            # read-only DuckDB over the views
    con.sql("SELECT model, avg(dto) FROM runs GROUP BY model").df()
    runs = orthosweep.restarts(outcome.study_dir)       # pandas: one row per restart
    r = orthosweep.load_restart(outcome.study_dir, runs.run_key[0])
    z = r.encode(r.heldout(100)); x = r.decode(z)        # numpy in, numpy out
    orthosweep.show(outcome.study_dir, runs.run_key[0])  # its reconstructions, samples, traversals (PNG, GIF)

The functions are a thin layer over the `sweep`, `workers` and `analysis` packages; their names and
arguments are the stable interface. Importing this package imports none of torch, sklearn, numba, Ray
or DuckDB: each function imports what it needs when it is called.
"""

from __future__ import annotations

from orthosweep.api import Outcome, load_restart, open, restarts, show, submit
from orthosweep.connection import Connection, Result

__all__ = ["Connection", "Outcome", "Result", "load_restart", "open", "restarts", "show", "submit"]
