"""The sweep service without Ray: planning from the store, dedup of final states, failed rows, compaction,
study folders, status, and the CLI's edge checks (unreachable address -> exit 2 within seconds)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
import yaml
from sweep_helpers import free_port, view_counts, view_rows, write_study

from sweep.cli import main
from sweep.driver import describe_plan, plan_sweep, shrink_trials
from sweep.failures import failed_rows
from sweep.preflight import PreflightError, address_kind, check_address, check_resources
from sweep.spec import load_study
from testing.stub_trainable import stub_rows
from workers.store.compact import compact_study, count_files
from workers.store.layout import split_study_dir
from workers.store.restarts import completed_run_keys, final_states
from workers.store.write import write_rows


@pytest.fixture()
def study(tmp_path: Path):
    return load_study(write_study(tmp_path / "s.yaml", name="unit", storage=str(tmp_path / "res"), seeds=5,
                                  per_trial=2))


def _at(seconds: int) -> dt.datetime:
    return dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)


def test_shrink_drops_finished_restarts_and_empty_blocks(study) -> None:
    trials = study.trials  # 2 models x blocks [0,1], [2,3], [4]
    assert [t.seeds for t in trials[:3]] == [(0, 1), (2, 3), (4,)]
    done = {trials[0].run_keys[1], trials[1].run_keys[0], trials[1].run_keys[1], trials[2].run_keys[0]}
    out = shrink_trials(trials, done)
    assert [(t.trial_id, t.seeds) for t in out[:1]] == [(trials[0].trial_id, (0,))]
    assert out[0].run_keys == (trials[0].run_keys[0],)
    assert out[1:] == trials[3:]  # the other model is untouched
    assert shrink_trials(trials, set()) == trials


def test_plan_reads_completion_from_the_store(study) -> None:
    t0 = study.trials[0]
    for epoch in t0.checkpoints:  # every checkpoint, the final one included: finished
        write_rows(study.study_uri, "checkpoints", stub_rows(t0, study.name, epoch, 0.0, 0))
    write_rows(study.study_uri, "checkpoints", stub_rows(study.trials[1], study.name, 1, 0.0, 0))
    plan = plan_sweep(study)
    assert plan.done_keys == set(t0.run_keys)
    assert plan.pending_restarts == 10 - 2 and len(plan.trials) == 6 - 1
    text = describe_plan(study, plan, None)
    assert "10 total, 2 already in the store, 8 to train in 5 trials" in text


def test_a_finished_restart_missing_a_checkpoint_epoch_is_trained_again(study) -> None:
    # its final row is stored but an earlier epoch's file was lost (torn, deleted): the views would lack that
    # row for good unless the restart is trained again, which rewrites every epoch (the views keep one each)
    t0, t1 = study.trials[0], study.trials[1]
    for epoch in t0.checkpoints:
        write_rows(study.study_uri, "checkpoints", stub_rows(t0, study.name, epoch, 0.0, 0))
    for epoch in t1.checkpoints[:1] + t1.checkpoints[2:]:  # every epoch but the second
        write_rows(study.study_uri, "checkpoints", stub_rows(t1, study.name, epoch, 0.0, 0))
    assert {s.done for s in final_states(study.study_uri, t1.run_keys).values()} == {True}  # status says finished
    plan = plan_sweep(study)
    assert plan.done_keys == set(t0.run_keys)
    assert any(t.run_keys == t1.run_keys for t in plan.trials)


def test_plan_notes_cuda_only_settings_that_will_not_act(study) -> None:
    import dataclasses

    from sweep.driver import gpu_setting_notes

    trials = [dataclasses.replace(t, precision="bf16", cuda_graphs=True) for t in study.trials]
    notes = gpu_setting_notes(trials, 0)
    assert len(notes) == 2 and "precision bf16 acts on CUDA only" in notes[0] and "cuda_graphs" in notes[1]
    assert gpu_setting_notes(trials, 1.0) == []  # on GPUs both act (these models are graph-eligible)
    paired = [dataclasses.replace(t, config=dataclasses.replace(t.config, model="slowvae")) for t in trials[:1]]
    assert "step eagerly: slowvae (slowvae draws each step's partners" in gpu_setting_notes(paired, 0.5)[0]
    assert gpu_setting_notes(study.trials, 0) == []  # fp32, no graphs: nothing to say


def test_final_states_latest_write_wins(study) -> None:
    trial = study.trials[0]
    a, b = trial.run_keys
    ok = stub_rows(trial, study.name, 2, 0.0, 0)
    for r in ok:
        r["written_at"] = _at(10)
    write_rows(study.study_uri, "checkpoints", [ok[0]])
    fails = failed_rows(study.name, trial, "boom", skip=set())
    for r in fails:
        r["written_at"] = _at(20)
    write_rows(study.study_uri, "checkpoints", fails)  # a (late) failed row over the finished restart a
    states = final_states(study.study_uri)  # the latest write wins (design.md §7), as in the runs view
    assert states[a].status == "failed" and states[b].status == "failed" and states[b].error == "boom"
    assert completed_run_keys(study.study_uri) == set()
    retried = stub_rows(trial, study.name, 2, 0.0, 1)
    for r in retried:
        r["written_at"] = _at(30)
    write_rows(study.study_uri, "checkpoints", retried)  # resume finishes both: the newer ok rows win
    assert completed_run_keys(study.study_uri) == {a, b}


def test_failed_rows_skip_finished_restarts(study) -> None:
    trial = study.trials[0]
    rows = failed_rows(study.name, trial, "err", skip={trial.run_keys[0]})
    assert [r["run_key"] for r in rows] == list(trial.run_keys[1:])
    assert rows[0]["status"] == "failed" and rows[0]["epoch"] == rows[0]["epochs"] == 2


def test_compact_keeps_every_view_identical(study) -> None:
    for trial in study.trials:
        for epoch in (0, 1, 2):
            write_rows(study.study_uri, "checkpoints", stub_rows(trial, study.name, epoch, 0.0, 0))
    write_rows(study.study_uri, "checkpoints", stub_rows(study.trials[0], study.name, 2, 0.0, 1))
    before_rows, before_counts = view_rows(study.study_uri), view_counts(study.study_uri)
    assert count_files(study.study_uri)["checkpoints"] == 6 * 3 + 1
    result = compact_study(study.study_uri)
    assert (result.files_before, result.files_after, result.partitions) == (19, 2, 2)
    assert count_files(study.study_uri)["checkpoints"] == 2
    assert view_rows(study.study_uri) == before_rows
    assert view_counts(study.study_uri) == before_counts == (10 * 3 + 2, 30, 30)
    assert compact_study(study.study_uri).files_before == 2  # idempotent


def test_split_study_dir() -> None:
    assert split_study_dir("/a/b/results/quick/") == ("/a/b/results", "quick")
    assert split_study_dir("quick") == (".", "quick")
    assert split_study_dir("s3://bkt/pre/quick?endpoint_override=127.0.0.1:9&scheme=http") == (
        "s3://bkt/pre?endpoint_override=127.0.0.1:9&scheme=http", "quick")


def test_address_kinds_and_resource_messages() -> None:
    assert [address_kind(a) for a in (None, "local", "http://h:8265", "ray://h:10001", "auto", "h:6379")] == [
        "local", "local", "jobs", "client", "auto", "gcs"]
    nodes = [{"Alive": True, "Resources": {"CPU": 2.0}}, {"Alive": False, "Resources": {"CPU": 8, "GPU": 1}}]
    assert check_resources(1, 0, nodes) is None
    msg = check_resources(1, 0.25, nodes)
    assert msg and "gpu=0.25" in msg and "largest node: CPU=2, GPU=0" in msg
    assert "cpu=4" in (check_resources(4, 0, nodes) or "")


@pytest.mark.parametrize("scheme", ["http://", "ray://", ""])
def test_unreachable_address_fails_within_seconds(scheme: str) -> None:
    port = free_port()  # bound then released: nothing listens there
    t = time.time()
    with pytest.raises(PreflightError, match=f"cannot connect to 127.0.0.1:{port}"):
        check_address(f"{scheme}127.0.0.1:{port}")
    assert time.time() - t < 5


def test_cli_submit_to_unreachable_address_exits_2_and_writes_nothing(tmp_path: Path, capsys) -> None:
    path = write_study(tmp_path / "s.yaml", name="unreach", storage=str(tmp_path / "res"))
    for address in (f"http://127.0.0.1:{free_port()}", f"ray://127.0.0.1:{free_port()}"):
        t = time.time()
        assert main(["submit", str(path), "--address", address]) == 2
        assert time.time() - t < 10
        assert "cannot connect" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


def test_cli_dry_run_schedules_and_writes_nothing(tmp_path: Path, capsys) -> None:
    path = write_study(tmp_path / "s.yaml", name="dry", storage=str(tmp_path / "res"), seeds=5, per_trial=2)
    assert main(["submit", str(path), "--dry-run", "--no-estimate", "--max-concurrent", "3"]) == 0
    out = capsys.readouterr().out
    assert "10 total, 0 already in the store, 10 to train in 6 trials" in out
    assert "synth_lin/ae: 5 restarts in 3 trials (seed blocks of up to 2)" in out
    assert "max concurrent trials: 3" in out
    assert not (tmp_path / "res").exists()


def test_cli_status_and_resume_of_a_folder_without_study_yaml(tmp_path: Path, capsys) -> None:
    assert main(["status", str(tmp_path / "nothing")]) == 2
    assert main(["resume", str(tmp_path / "nothing")]) == 2
    assert "holds no study.yaml" in capsys.readouterr().err


def test_cli_status_counts_from_the_store(study, capsys) -> None:
    from workers.store import layout

    layout.write_study_yaml(study.study_uri, study.normalized)
    t0, t1 = study.trials[0], study.trials[1]
    write_rows(study.study_uri, "checkpoints", stub_rows(t0, study.name, 2, 0.0, 0))
    write_rows(study.study_uri, "checkpoints", failed_rows(study.name, t1, "CUDA out of memory", set()))
    layout.write_driver_state(study.study_uri, {"heartbeat": time.time(), "started": time.time(), "finished": False,
                                                "running": {"x": study.trials[3].run_keys}, "host": "h", "pid": 1})
    assert main(["status", study.study_uri]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[1]: ln.split()[2:] for ln in out.splitlines() if ln.startswith("synth_lin")}
    assert lines["ae"] == ["5", "2", "0", "2", "1"]  # total done running failed remaining
    assert lines["beta_vae"] == ["5", "0", "2", "0", "3"]
    assert "driver: running on h" in out and "CUDA out of memory" in out


def test_job_entrypoint_runs_the_driver_on_the_head() -> None:
    from sweep.jobs import job_entrypoint

    # the packages travel with the job: no console script has to be on the head's PATH
    assert job_entrypoint(4, None) == "python -m sweep.cli submit study.yaml --address auto --max-concurrent 4"


def test_s3_storage_nobody_answers_fails_within_seconds(monkeypatch) -> None:
    from sweep.preflight import check_storage

    for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(k, v)
    t = time.time()
    with pytest.raises(PreflightError, match="cannot be written.*endpoint_override"):
        check_storage(f"s3://b/p/s?endpoint_override=127.0.0.1:{free_port()}&scheme=http&region=us-east-1")
    assert time.time() - t < 25


def test_wait_for_resources_returns_when_a_node_appears_and_fails_after_the_timeout() -> None:
    from sweep.preflight import wait_for_resources

    cpu_only = [{"Alive": True, "Resources": {"CPU": 4.0}}]
    gpu_node = {"Alive": True, "Resources": {"CPU": 4.0, "GPU": 1.0}}
    views = iter([cpu_only, cpu_only, cpu_only + [gpu_node]])  # the autoscaler adds a GPU node on the 3rd look
    said: list[str] = []
    wait_for_resources(1, 0.25, lambda: next(views), timeout=5, poll=0.01, say=said.append)
    assert said and "waiting up to 5 s" in said[0]
    t = time.time()
    with pytest.raises(PreflightError, match=r"no node.*waited 0\.2 s|waited 0 s"):
        wait_for_resources(1, 0.25, lambda: cpu_only, timeout=0.2, poll=0.05, say=said.append)
    assert time.time() - t < 2
    with pytest.raises(PreflightError, match="gpu=0.25"):  # local Ray: no waiting at all
        wait_for_resources(1, 0.25, lambda: cpu_only, timeout=0)


def test_progress_counts_restarts_and_estimates_from_partial_epochs(study, tmp_path: Path) -> None:
    import io
    from types import SimpleNamespace

    from sweep.progress import SweepProgress

    failures: list[str] = []
    out = io.StringIO()
    p = SweepProgress(study.study_uri, total=10, done_keys=set(study.trials[5].run_keys),
                      on_failure=lambda spec, err: failures.append(spec["trial_id"]) or 0, out=out, every=0)
    a, b = (SimpleNamespace(trial_id=f"t{i}", config={"trial": study.trials[i].to_dict()}, error_file=None,
                            get_pickled_error=lambda: None, get_error=lambda: None) for i in (0, 1))
    p.started -= 100  # 100 s into the sweep
    p.on_trial_start(0, [], a)
    p.on_trial_start(0, [], b)
    p.on_trial_result(0, [], a, {"epoch": 1})  # half of a's 2 restarts' epochs: 1 restart's worth of work
    assert "1/10 restarts done, 0 failed, 2 trials running" in p.line()
    assert "ETA 0:13:20" in p.line()  # 100 s per restart's worth, 9 - 1 in progress = 8 left
    p.on_trial_result(0, [], a, {"epoch": 2})
    p.on_trial_complete(0, [], a)
    p.on_trial_error(0, [], b)
    assert failures == [study.trials[1].trial_id] and (p.done, p.failed, p.trained) == (3, 2, 4)
    assert "3/10 restarts done, 2 failed, 0 trials running" in out.getvalue().splitlines()[-1]
    assert (tmp_path / "res" / "unit" / "tune" / "driver.json").exists()


def test_cli_dry_run_estimates_device_hours_from_a_real_calibration(tmp_path: Path, capsys) -> None:
    path = write_study(tmp_path / "s.yaml", name="est", storage=str(tmp_path / "res"), seeds=4, per_trial=2)
    assert main(["submit", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "step shapes measured now" in out and "ms/step" in out and "device-hours" in out
    assert not (tmp_path / "res").exists()


def test_dry_run_calibrates_factorvae_and_a_tanh_decoder(tmp_path: Path, capsys) -> None:
    # The calibration runs the real train step (FactorVAE's permuted latents) and the real checkpoint evaluation
    # (DtO through the synth_nonlin tanh decoder): both broke once without any sweep test noticing.
    spec = {"study": "cal", "storage": str(tmp_path / "res"),
            "grid": {"dataset": ["synth_nonlin"], "model": ["factorvae", "beta_vae"], "seeds": 2},
            "overrides": {"synth_nonlin": {"n": 256}},
            "train": {"epochs": 1, "seeds_per_trial": 2, "batch_size": 32},
            "eval": {"metrics": ["dto", "mig"], "n_eval": 64}, "resources": {"cpu": 1}}
    path = tmp_path / "cal.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["submit", str(path), "--dry-run"]) == 0
    assert "device-hours" in capsys.readouterr().out


def test_unfinished_fifo_chooses_as_tunes_fifo_does_looking_at_unfinished_trials_only() -> None:
    from types import SimpleNamespace

    from ray.tune.experiment import Trial
    from ray.tune.schedulers import FIFOScheduler

    from sweep.planned_search import UnfinishedFifo

    trials = [Trial("t", config={"i": i}, stub=True) for i in range(5)]
    controller = SimpleNamespace(get_trials=lambda: trials)
    ours, tunes = UnfinishedFifo(), FIFOScheduler()
    done = Trial("t", config={"i": -1}, stub=True)
    done.set_status(Trial.TERMINATED)
    ours.on_trial_add(controller, done)  # a restored experiment's finished trial: never a candidate
    for t in trials:
        ours.on_trial_add(controller, t)

    def same_choice() -> Trial | None:
        chosen = ours.choose_trial_to_run(controller)
        assert chosen is tunes.choose_trial_to_run(controller)
        return chosen

    assert same_choice() is trials[0]
    trials[0].set_status(Trial.RUNNING)
    assert same_choice() is trials[1]
    trials[1].set_status(Trial.TERMINATED)  # finished without the scheduler hearing of it
    trials[0].set_status(Trial.TERMINATED)
    ours.on_trial_complete(controller, trials[0], {})
    trials[2].set_status(Trial.PAUSED)
    assert same_choice() is trials[3]
    for t in trials[3:]:
        t.set_status(Trial.RUNNING)
    assert same_choice() is trials[2]  # no pending trial: the first paused one
    ours.on_trial_error(controller, trials[3])  # a retry: Tune re-queues it at the end and adds it again
    trials.append(trials.pop(3))
    trials[-1].set_status(Trial.PENDING)
    ours.on_trial_add(controller, trials[-1])
    assert same_choice() is trials[-1]
    assert list(ours._unfinished) == trials[2:]
