"""The one store layer: damaged files never stop a command, one completion rule everywhere, one-way imports.

A small study is written through the sink with known rows (the stub trainable's values), then a torn and a
zero-byte file are put into `checkpoints/` and `trace/`: every command that reads the store must succeed
and name both files. A later `failed` row over an `ok` row must read the same in `status`, `runs` and
`stats`. The package layering and the cheapness of the read-only commands are checked on the real code.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sweep_helpers import STUB, write_study

from sweep.cli import main
from sweep.driver import write_study_files
from sweep.spec import load_study
from testing.stub_trainable import stub_rows
from workers.store import layout
from workers.store.plan import PLAN_FILE, read_plan
from workers.store.restarts import final_states
from workers.store.views import VIEWS, connect, view_closure, views_connection, views_named
from workers.store.write import write_rows

ROOT = Path(__file__).resolve().parent.parent
TORN = b"PAR1\0\0"


@pytest.fixture()
def study(tmp_path: Path):
    """A finished 2-model x 3-seed study (stub rows at epochs 0..2) with its study.yaml."""
    st = load_study(write_study(tmp_path / "s.yaml", name="layer", storage=str(tmp_path / "res"), seeds=3,
                                per_trial=3))
    write_study_files(st)  # study.yaml and restarts.json, as submit writes them
    for trial in st.trials:
        for epoch in (0, 1, 2):
            write_rows(st.study_uri, "checkpoints", stub_rows(trial, st.name, epoch, 0.0, 0))
    write_rows(st.study_uri, "trace", [{"study": st.name, "run_key": rk, "config_key": t.config_key,
                                        "dataset": "synth_lin", "model": t.config.model, "seed": s, "step": 1,
                                        "epoch": 0.5, "loss": 1.0}
                                       for t in st.trials for s, rk in zip(t.seeds, t.run_keys, strict=True)])
    return st


def _damage(study_uri: str) -> list[str]:
    """A torn and a zero-byte file in checkpoints/ and trace/; returns their paths."""
    bad = []
    for table in ("checkpoints", "trace"):
        part = Path(study_uri) / table / "dataset=synth_lin" / "model=ae"
        part.mkdir(parents=True, exist_ok=True)
        for name, data in (("zz-torn.parquet", TORN), ("zz-empty.parquet", b"")):
            (part / name).write_bytes(data)
            bad.append(str(part / name))
    return bad


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweep.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


def test_damaged_files_are_skipped_and_named_by_every_reading_command(study, tmp_path: Path) -> None:
    bad = _damage(study.study_uri)
    uri = study.study_uri
    commands = [("status", uri), ("sql", uri, "SELECT count(*) AS n FROM checkpoints"),
                ("sql", uri, "SELECT count(*) AS n FROM trace"), ("views", uri),
                ("stats", uri), ("plots", uri, "--out", str(tmp_path / "plots")),
                ("report", uri, "--out", str(tmp_path / "r.html")), ("compare", uri), ("compact", uri)]
    for args in commands:
        res = _cli(*args)
        assert res.returncode == 0, (args, res.stdout[-2000:], res.stderr[-2000:])
        assert "Traceback" not in res.stderr, (args, res.stderr[-2000:])
        # status and a query of checkpoints read checkpoints only; a query of trace reads trace only
        wanted = bad[:2] if args[0] == "status" or "checkpoints" in args[-1] else bad[2:] if "trace" in args[-1] \
            else bad
        for path in wanted:
            assert f"skipping unreadable Parquet file {path}" in res.stderr, (args, path, res.stderr[-2000:])
    status = _cli("status", uri).stdout
    assert next(ln.split() for ln in status.splitlines() if ln.startswith("all"))[1:] == ["6", "6", "0", "0", "0"]
    n = json.loads(_cli("sql", uri, "SELECT count(*) AS n FROM checkpoints", "--format", "json").stdout)
    assert n == [{"n": 18}]
    for path in bad:  # compaction leaves what it cannot read where it is
        assert Path(path).exists()


@pytest.mark.slow
def test_resume_of_a_store_with_damaged_files_trains_only_what_is_missing(tmp_path: Path) -> None:
    st = load_study(write_study(tmp_path / "s.yaml", name="torn", storage=str(tmp_path / "res"), seeds=2,
                                per_trial=2, models=("ae",)))
    layout.write_study_yaml(st.study_uri, st.normalized)
    (trial,) = st.trials
    for epoch in trial.checkpoints:  # seed 0 finished: a row at every checkpoint epoch
        write_rows(st.study_uri, "checkpoints", stub_rows(trial, st.name, epoch, 0.0, 0)[:1])
    bad = _damage(st.study_uri)
    res = _cli("resume", st.study_uri, "--trainable", STUB)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert f"skipping unreadable Parquet file {bad[0]}" in res.stderr
    assert "1 already in the store, 1 to train in 1 trials" in res.stdout
    assert {s.status for s in final_states(st.study_uri).values()} == {"ok"}
    assert len(final_states(st.study_uri)) == 2


def test_a_later_failed_row_reads_the_same_in_status_runs_and_stats(study, capsys) -> None:
    trial = study.trials[0]
    late = [{**trial.restart_columns(study.name, 0), "epoch": 2, "status": "failed", "error": "boom",
             "written_at": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)}]
    write_rows(study.study_uri, "checkpoints", late)
    rk = trial.run_keys[0]
    assert final_states(study.study_uri)[rk].status == "failed"
    con = connect(study.study_uri)
    assert con.execute("SELECT status FROM runs WHERE run_key = ?", [rk]).fetchone() == ("failed",)
    assert main(["status", study.study_uri]) == 0
    out = capsys.readouterr().out
    rows = {ln.split()[1]: ln.split() for ln in out.splitlines() if ln.startswith("synth_lin")}
    row = rows[trial.config.model]
    assert row[2:] == ["3", "2", "0", "1", "0"]  # total done running failed remaining
    assert main(["stats", study.study_uri, "--format", "json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["n_restarts"] == 5  # the failed restart is left out, as status counts it


def test_a_renamed_study_folder_is_read_with_a_warning(study, tmp_path: Path) -> None:
    renamed = tmp_path / "renamed"
    shutil.copytree(study.study_uri, renamed)
    for args in (("status", str(renamed)), ("sql", str(renamed), "SELECT count(*) FROM runs"), ("stats", str(renamed)),
                 ("report", str(renamed), "--out", str(tmp_path / "r.html"))):
        res = _cli(*args)
        assert res.returncode == 0, (args, res.stderr[-2000:])
        assert "folder 'renamed' holds study 'layer'" in res.stderr, (args, res.stderr[-2000:])
    assert "6     6" in _cli("status", str(renamed)).stdout


def test_status_from_the_plan_equals_status_from_the_validated_spec(study, capsys) -> None:
    plan = read_plan(study.study_uri)
    assert plan is not None and plan.study == "layer"
    assert [r.run_key for r in plan.restarts] == [r.run_key for r in study.restarts]
    assert main(["status", study.study_uri]) == 0
    from_plan = capsys.readouterr().out
    (Path(study.study_uri) / PLAN_FILE).unlink()
    assert main(["status", study.study_uri]) == 0
    assert capsys.readouterr().out == from_plan
    assert "6     6" in from_plan


def test_a_plan_not_derived_from_the_study_yaml_beside_it_is_ignored(study, capsys) -> None:
    """An edited study.yaml (here: one seed fewer) makes the plan stale: status validates the spec instead."""
    yml = Path(study.study_uri) / "study.yaml"
    yml.write_text(yml.read_text().replace("seeds: 3", "seeds: 2"))
    assert read_plan(study.study_uri) is None
    assert main(["status", study.study_uri]) == 0
    assert "4     4" in capsys.readouterr().out  # 2 models x 2 seeds planned, all of them stored
    (Path(study.study_uri) / PLAN_FILE).write_text("{torn")
    assert read_plan(study.study_uri) is None


def test_every_view_built_alone_reads_what_the_full_catalog_reads(study) -> None:
    """`views=` builds a view's closure only (status, pending, sql); each view must give the same rows as
    in the connection with every view."""
    loc = [layout.location(study.study_uri)]
    full = views_connection(loc)
    for v in VIEWS:
        alone = views_connection(loc, views=[v])
        assert set(view_closure([v])) <= {r[0] for r in alone.execute("SHOW TABLES").fetchall()}
        q = f"SELECT count(*), count(DISTINCT {'config_key' if v == 'groups' else 'run_key'}) FROM {v}"
        assert alone.execute(q).fetchone() == full.execute(q).fetchone(), v
    assert views_named("SELECT model, avg(dto) FROM Runs r JOIN trace USING (run_key)") == ["runs", "trace"]
    assert view_closure(["runs"]) == ["trained", "evaluations", "checkpoints", "runs"]


# --------------------------------------------------------------------------------------------------
# Layering and import cost
# --------------------------------------------------------------------------------------------------

LAYERS = {"workers": set(), "sweep": {"workers"}, "analysis": {"sweep", "workers"},
          "orthosweep": {"analysis", "sweep", "workers"}}  # the public API sits on top
STRING_LAYERS = set(LAYERS) - {"orthosweep"}  # "orthosweep.commands" etc. are entry-point groups, not modules


def _imported_packages(path: Path) -> set[str]:
    """Top-level packages of the project named by any import in the file (also inside functions) or by a
    string handed to importlib."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.split(".")[0] in STRING_LAYERS \
                and node.value.replace(".", "").replace(":", "").replace("_", "").isalnum() and "." in node.value:
            names.add(node.value.split(":")[0])
    return {n.split(".")[0] for n in names} & set(LAYERS)


@pytest.mark.parametrize("layer", list(LAYERS))
def test_imports_run_one_way(layer: str) -> None:
    wrong = {}
    for f in sorted((ROOT / layer).rglob("*.py")):
        bad = _imported_packages(f) - LAYERS[layer] - {layer}
        if bad:
            wrong[str(f.relative_to(ROOT))] = sorted(bad)
    assert not wrong, f"{layer} may import only {sorted(LAYERS[layer])}: {wrong}"


HEAVY = ("torch", "sklearn", "numba", "ray", "matplotlib", "scipy")


def test_read_only_commands_import_no_heavy_module(study) -> None:
    """None of HEAVY; and pandas (~0.25 s) only where a command builds data frames (compare's tables)."""
    uri = study.study_uri
    probe = ("import sys\nfrom sweep.cli import main\nrc = main(sys.argv[2:])\n"
             "print('HEAVY', sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1].split(','))))\n"
             "sys.exit(rc)")
    no_pandas = ",".join((*HEAVY, "pandas"))
    for banned, args in ((no_pandas, ["views"]), (no_pandas, ["views", uri]),
                         (no_pandas, ["sql", uri, "SELECT count(*) FROM runs"]), (no_pandas, ["status", uri]),
                         (no_pandas, ["validate", str(ROOT / "studies" / "quickstart.yaml")]),
                         (",".join(HEAVY), ["compare", uri])):
        res = subprocess.run([sys.executable, "-c", probe, banned, *args], capture_output=True, text=True, cwd=ROOT,
                             timeout=120)
        assert res.returncode == 0, (args, res.stderr[-2000:])
        assert "HEAVY []" in res.stdout, (args, res.stdout[-500:])
    res = subprocess.run([sys.executable, "-c", probe, "pydantic,yaml", "status", uri], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)  # the plan spares status the spec's validation
    assert "HEAVY []" in res.stdout, res.stdout[-500:] + res.stderr[-2000:]
    res = subprocess.run([sys.executable, "-c", "import sys\nfrom sweep.cli import build_parser\nbuild_parser()\n"
                          f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.stdout.strip() == "[]", res.stdout + res.stderr
