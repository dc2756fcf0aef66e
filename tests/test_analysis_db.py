"""The store views (workers.store.views) and the sql/views commands on stores with planted content."""

from __future__ import annotations

import datetime as dt
import io
import json
import warnings
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analysis.summary import final_summary
from sweep.cli import main as cli
from testing.synthetic_store import checkpoint_row
from workers.store.files import UnreadableFileWarning
from workers.store.views import ReadOnlyError, check_read_only, connect
from workers.store.write import write_rows

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _at(seconds: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """4 restarts × epochs {0, 10} of one group, then replays: the same rows re-emitted by a retry with
    different values (later written_at wins), and a same-time duplicate with a higher attempt."""
    study = tmp_path / "res" / "planted"
    (study).mkdir(parents=True)
    (study / "study.yaml").write_text("study: planted\n")
    rows = [checkpoint_row(f"r{s}", e, seed=s, dto=1.0 + s, mig=0.1 * s, written_at=_at(0))
            for s in range(4) for e in (0, 10)]
    write_rows(str(study), "checkpoints", rows)
    write_rows(str(study), "checkpoints", [checkpoint_row("r0", 10, dto=7.0, mig=0.7, written_at=_at(5))])
    write_rows(str(study), "checkpoints", [checkpoint_row("r1", 10, seed=1, dto=8.0, mig=0.8, written_at=_at(0),
                                                          attempt=3)])
    write_rows(str(study), "trace", [{"study": "planted", "run_key": "r0", "dataset": "synth_lin",
                                      "model": "beta_vae", "step": s, "loss": 1.0 / (s + 1)} for s in range(5)])
    return study


def test_dedup_keeps_latest_write_then_highest_attempt(store: Path) -> None:
    con = connect(str(store))
    assert con.execute("SELECT count(*) FROM checkpoints_raw").fetchone()[0] == 10
    assert con.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 8
    got = dict(con.execute("SELECT run_key, dto FROM checkpoints WHERE epoch = 10").fetchall())
    assert got == {"r0": 7.0, "r1": 8.0, "r2": 3.0, "r3": 4.0}
    runs = con.execute("SELECT run_key, epoch, n_checkpoints FROM runs ORDER BY run_key").fetchall()
    assert runs == [(f"r{s}", 10, 2) for s in range(4)]
    g = con.execute("SELECT epoch, n, n_ok, dto_mean FROM groups ORDER BY epoch").fetchall()
    assert g == [(0, 4, 4, pytest.approx(2.5)), (10, 4, 4, pytest.approx((7 + 8 + 3 + 4) / 4))]
    assert con.execute("SELECT count(*) FROM trace").fetchone()[0] == 5


def test_identical_copies_of_a_file_count_once(store: Path) -> None:
    """A byte-identical copy (e.g. a compaction that has not yet removed its sources) adds no row."""
    part = store / "checkpoints" / "dataset=synth_lin" / "model=beta_vae"
    first = sorted(part.glob("*.parquet"))[0]
    (part / "copy.parquet").write_bytes(first.read_bytes())
    con = connect(str(store))
    assert con.execute("SELECT count(*) FROM checkpoints_raw").fetchone()[0] == 18
    assert con.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 8
    assert con.execute("SELECT count(*), sum(n_checkpoints) FROM runs").fetchone() == (4, 8)


def test_corrupt_and_truncated_files_are_skipped_with_a_warning_naming_them(store: Path, capsys) -> None:
    part = store / "checkpoints" / "dataset=synth_lin" / "model=beta_vae"
    good = sorted(part.glob("*.parquet"))[0]
    truncated = part / "truncated.parquet"
    truncated.write_bytes(good.read_bytes()[:-40])
    (part / "garbage.parquet").write_bytes(b"PAR1 not parquet at all")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        con = connect(str(store))
    named = {Path(str(w.message).split()[4].rstrip(":")).name for w in caught
             if issubclass(w.category, UnreadableFileWarning)}
    assert named == {"truncated.parquet", "garbage.parquet"}
    err = capsys.readouterr().err
    assert "truncated.parquet" in err and "garbage.parquet" in err
    assert con.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 8  # the readable rows are all there


@pytest.mark.parametrize("sql", [
    "DELETE FROM checkpoints", "INSERT INTO checkpoints SELECT * FROM checkpoints", "DROP VIEW runs",
    "CREATE TABLE x AS SELECT 1", "UPDATE checkpoints SET dto = 0", "COPY (SELECT 1) TO 'x.csv'",
    "ATTACH 'x.duckdb' AS x", "SELECT 1; DELETE FROM checkpoints",
])
def test_read_only_guard(store: Path, tmp_path: Path, sql: str) -> None:
    with pytest.raises(ReadOnlyError, match="read-only"):
        check_read_only(sql)
    con = connect(str(store))
    with pytest.raises(Exception):  # noqa: B017 - the connection itself refuses too, whatever the kind
        con.execute(sql.replace("'x", f"'{tmp_path}/x"))
    assert con.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 8
    assert not list(tmp_path.glob("x*"))


def test_sql_command_formats_and_refusal(store: Path, tmp_path: Path, capsys) -> None:
    q = "SELECT run_key, dto FROM runs ORDER BY run_key"
    assert cli(["sql", str(store), q, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0] == {"run_key": "r0", "dto": 7.0}
    assert cli(["sql", str(store), q, "--format", "csv", "--out", str(tmp_path / "o.csv")]) == 0
    assert (tmp_path / "o.csv").read_text().splitlines()[1] == '"r0",7'
    assert cli(["sql", str(store), q, "--format", "parquet", "--out", str(tmp_path / "o.parquet")]) == 0
    assert pq.read_table(tmp_path / "o.parquet").column("dto").to_pylist() == [7.0, 8.0, 3.0, 4.0]
    assert cli(["sql", str(store), "DELETE FROM checkpoints"]) == 2
    assert "read-only" in capsys.readouterr().err
    assert cli(["views", str(store)]) == 0
    assert "n_checkpoints" in capsys.readouterr().out
    assert cli(["sql", str(store.parent), "SELECT count(*) AS n FROM runs", "--study", "planted"]) == 0
    assert "\n4\n" in capsys.readouterr().out
    assert cli(["sql", str(store.parent / "nosuch"), "SELECT 1"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli(["stats", str(store), "--metric", "mgi"]) == 2
    assert "not a metric column" in capsys.readouterr().err


def test_interactive_mode_reads_statements_until_quit(store: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("SELECT count(*) AS n\nFROM runs;\nDROP VIEW runs;\n.quit\n"))
    assert cli(["sql", str(store)]) == 0
    out, err = capsys.readouterr()
    assert "(1 rows)" in out and "\n4\n" in out
    assert "refused DROP" in err


def test_several_studies_from_a_storage_root(store: Path) -> None:
    other = store.parent / "second"
    write_rows(str(other), "checkpoints", [checkpoint_row("q0", 5, study="second", dto=0.5)])
    con = connect(str(store.parent))  # the root: every study under it
    assert con.execute("SELECT study, count(*) FROM runs GROUP BY ALL ORDER BY 1").fetchall() == [
        ("planted", 4), ("second", 1)]
    con = connect(str(store.parent), ["second"])
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    with pytest.raises(FileNotFoundError, match="nosuch"):
        connect(str(store.parent), "nosuch")


def test_empty_study_has_typed_empty_views(tmp_path: Path) -> None:
    study = tmp_path / "empty"
    study.mkdir()
    (study / "study.yaml").write_text("study: empty\n")
    con = connect(str(study))
    assert con.execute("SELECT count(*), avg(dto) FROM runs").fetchone() == (0, None)


def test_files_of_older_or_narrower_schemas_read_with_the_schema_v1(store: Path) -> None:
    """A file without some columns (an older writer) and with int32 integers reads beside the sink's files:
    the missing columns are null, the integers widened, every row counted once."""
    import pyarrow as pa

    part = store / "checkpoints" / "dataset=synth_lin" / "model=beta_vae"
    pq.write_table(pa.table({"study": ["planted"], "run_key": ["old"], "dataset": ["synth_lin"],
                             "model": ["beta_vae"], "epoch": pa.array([10], pa.int32()),
                             "epochs": pa.array([10], pa.int32()), "status": ["ok"], "dto": [0.5],
                             "written_at": pa.array([_at(1)], pa.timestamp("us", tz="UTC"))}),
                   part / "older.parquet")
    con = connect(str(store))
    assert con.execute("SELECT count(*) FROM checkpoints_raw").fetchone()[0] == 11
    row = con.execute("SELECT epoch, dto, mig, typeof(epoch) FROM checkpoints WHERE run_key = 'old'").fetchall()
    assert row == [(10, 0.5, None, "BIGINT")]
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 5


def test_a_file_whose_column_contradicts_the_schema_is_skipped_and_named(store: Path) -> None:
    import pyarrow as pa

    part = store / "checkpoints" / "dataset=synth_lin" / "model=beta_vae"
    for name in ("wrong-a.parquet", "wrong-b.parquet"):  # two files of one schema: both named, not only the first
        pq.write_table(pa.table({"study": ["planted"], "run_key": ["bad"], "epoch": [10], "dto": ["high"]}),
                       part / name)
    with pytest.warns(UnreadableFileWarning) as caught:
        con = connect(str(store))
    said = " ".join(str(w.message) for w in caught)
    for name in ("wrong-a.parquet", "wrong-b.parquet"):
        assert f"{name}: column 'dto' has type string, schema v1 says double" in said
    assert con.execute("SELECT count(*) FROM checkpoints_raw WHERE run_key = 'bad'").fetchone()[0] == 0


def test_final_summary_table_and_scatter(store: Path) -> None:
    text = final_summary(str(store))
    line = next(s for s in text.splitlines() if s.startswith("synth_lin"))
    # last checkpoint of r0..r3: dto 7, 8, 3, 4 -> mean 5.5, sample std sqrt(5.6667)
    assert "5.500 ± 2.380" in line and " 4 " in line
    png = store / "plots" / "dto_vs_mig.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dedup_plan_equals_the_window_definition_on_random_replays(tmp_path: Path) -> None:
    """Random re-emits (later writes, higher attempts, same-time ties) and identical file copies: the
    connect-time plan gives exactly the rows of the documented window over all rows."""
    import random

    from workers.store.views import _DEDUP

    rnd = random.Random(0)
    study = tmp_path / "replays"
    base = [checkpoint_row(f"r{s}", e, seed=s, dto=float(s * 10 + e), written_at=_at(0)) for s in range(30)
            for e in (0, 1, 2)]
    write_rows(str(study), "checkpoints", base)
    for i in range(40):
        r = rnd.choice(base)
        write_rows(str(study), "checkpoints", [dict(r, dto=1000.0 + i, written_at=_at(rnd.choice([0, 1, 2])),
                                                    attempt=rnd.choice([0, 1, 2]))])
    part = study / "checkpoints" / "dataset=synth_lin" / "model=beta_vae"
    for f in rnd.sample(sorted(part.glob("*.parquet")), 10):
        (part / f"copy-{f.name}").write_bytes(f.read_bytes())
    con = connect(str(study))
    cols = "run_key, epoch, written_at::VARCHAR, attempt"
    got = con.execute(f"SELECT {cols} FROM checkpoints ORDER BY ALL").fetchall()
    window = _DEDUP.format(table="checkpoints", key="epoch")
    want = con.execute(f"SELECT {cols} FROM ({window}) ORDER BY ALL").fetchall()
    assert got == want and len(got) == 90
    assert len({(r[0], r[1]) for r in got}) == 90  # one row per (run_key, epoch)
