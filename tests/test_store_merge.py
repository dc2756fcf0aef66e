"""The merging rule of later evaluations into the `checkpoints` view, on rows written by hand.

Each case writes training rows and evaluation rows with chosen `written_at` times through the sink and
checks what the view shows: the latest evaluation newer than the training row wins per metric, a retrained
checkpoint hides older evaluations, a failed evaluation leaves the metric null and says why in `error`,
and the view keeps one row per (run_key, epoch) while the raw views keep the history.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from workers.store.pending import pending_evaluations
from workers.store.views import connect
from workers.store.write import write_rows

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
IDENT = {"study": "m", "run_key": "rk1", "config_key": "ck", "dataset": "synth_lin", "model": "beta_vae",
         "seed": 0, "epoch": 2}


def _at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def _train(uri: str, minute: int, **cols: object) -> None:
    write_rows(uri, "checkpoints", [IDENT | {"epochs": 2, "status": "ok", "written_at": _at(minute)} | cols])


def _eval(uri: str, minute: int, metric: str, status: str = "ok", **cols: object) -> None:
    write_rows(uri, "evaluations", [IDENT | {"metric": metric, "status": status, "written_at": _at(minute)} | cols])


def _row(uri: str) -> tuple:
    con = connect(uri)
    rows = con.execute("SELECT sap, dto, list_sort(evaluated), error FROM checkpoints").fetchall()
    assert len(rows) == 1  # one row per (run_key, epoch), however many writes
    return rows[0]


def test_latest_newer_evaluation_wins_per_metric(tmp_path: Path) -> None:
    uri = str(tmp_path / "m")
    _train(uri, 0, dto=0.5, sap=0.1, evaluated=["dto", "sap"])
    assert _row(uri) == (0.1, 0.5, ["dto", "sap"], None)
    _eval(uri, 5, "sap", sap=0.2)
    _eval(uri, 9, "sap", sap=0.3)
    assert _row(uri) == (0.3, 0.5, ["dto", "sap"], None)  # the latest evaluation; dto untouched
    con = connect(uri)
    assert con.execute("SELECT count(*) FROM evaluations_raw").fetchone()[0] == 2
    assert con.execute("SELECT sap FROM evaluations").fetchall() == [(0.3,)]
    assert con.execute("SELECT sap FROM checkpoints_raw").fetchall() == [(0.1,)]  # history kept


def test_an_evaluation_older_than_the_training_row_is_hidden(tmp_path: Path) -> None:
    uri = str(tmp_path / "m")
    _train(uri, 0, dto=0.5, evaluated=["dto"])
    _eval(uri, 5, "sap", sap=0.2)
    assert _row(uri) == (0.2, 0.5, ["dto", "sap"], None)
    _train(uri, 10, dto=0.4, evaluated=["dto"])  # retrained: new weights, the old evaluation no longer applies
    assert _row(uri) == (None, 0.4, ["dto"], None)
    assert set(pending_evaluations(uri, ["sap"]).checkpoint_jobs) == set()  # no weights stored here
    assert pending_evaluations(uri, ["sap"]).without_weights == 1


def test_a_failed_evaluation_leaves_the_metric_null_and_says_why(tmp_path: Path) -> None:
    uri = str(tmp_path / "m")
    _train(uri, 0, dto=0.5, evaluated=["dto"])
    _eval(uri, 5, "sap", status="failed", error="ValueError: encoder returned NaN")
    assert _row(uri) == (None, 0.5, ["dto"], "sap: ValueError: encoder returned NaN")
    _eval(uri, 6, "sap", sap=0.25)  # a later evaluation that worked replaces the failure
    assert _row(uri) == (0.25, 0.5, ["dto", "sap"], None)


def test_pending_counts_inline_and_evaluated_metrics_as_present(tmp_path: Path) -> None:
    uri = str(tmp_path / "m")
    _train(uri, 0, dto=0.5, evaluated=["dto"])
    (tmp_path / "m" / "models" / "rk1").mkdir(parents=True)
    (tmp_path / "m" / "models" / "rk1" / "e2.pt").write_bytes(b"")
    assert pending_evaluations(uri, ["dto", "sap"]).checkpoint_jobs and \
        list(pending_evaluations(uri, ["dto", "sap"]).checkpoint_jobs.values()) == [("sap",)]
    _eval(uri, 5, "sap", sap=0.2)
    assert pending_evaluations(uri, ["dto", "sap"]).empty
    assert list(pending_evaluations(uri, ["sap"], force=True).checkpoint_jobs.values()) == [("sap",)]
    assert pending_evaluations(uri, ["sap"], epochs=[1]).evaluable == 0
