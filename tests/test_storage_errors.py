"""Storage failures told apart from other errors, from the text they reach the driver as, and said in one line."""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

import pytest

from sweep.storage_errors import StorageFault, fault_in, fault_of, raises_storage_faults

STUDY = "/data/results/s1"


@pytest.mark.parametrize(("text", "problem"), [
    ("OSError: [Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device", "no space left"),
    ("OSError: [Errno 122] Disk quota exceeded", "disk quota exceeded"),
    ("OSError: [Errno 30] Read-only file system: '/data/results/s1/study.yaml'", "read-only"),
    # pyarrow's words for a bucket deleted under a sweep (checked against a moto server)
    ("OSError: Bucket 'gonebucket' not found. To create buckets, enable the allow_bucket_creation option.",
     "bucket does not exist"),
    ("PermissionError: [Errno 13] Permission denied: '/data/results/s1/checkpoints/x.parquet'", "permission denied"),
])
def test_storage_failures_are_recognised_in_error_text(text: str, problem: str) -> None:
    fault = fault_in(f"Traceback (most recent call last):\n  File 'x.py'\n{text}\n", STUDY)
    assert fault is not None and problem in fault.problem
    assert fault.detail == text[:200]


@pytest.mark.parametrize("text", [
    "PermissionError: [Errno 13] Permission denied: '/datasets/dsprites.npz'",  # not the store's
    "RuntimeError: stub failure injected for seeds [13]",
    "ValueError: loss is nan",
])
def test_other_errors_are_not_storage_failures(text: str) -> None:
    assert fault_in(text, STUDY) is None


def test_the_message_names_the_path_the_failure_the_fix_and_the_count() -> None:
    fault = fault_of(OSError(errno.ENOSPC, "No space left on device"), STUDY)
    assert fault is not None
    line = fault.message(5, 8)
    assert line.startswith(f"error: storage {STUDY}: writing failed: no space left on the device")
    assert f"free space, then `orthosweep resume {STUDY}` (5 of 8 restarts are complete in the store" in line
    assert "\n" not in line
    assert "could not be read" in fault.message(None, 8)


def test_a_driver_error_that_is_a_storage_failure_becomes_a_storage_fault(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    class Study:
        name, study_uri = "s1", STUDY

    @raises_storage_faults
    def full(study: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", f"{STUDY}/study.yaml")

    @raises_storage_faults
    def other(study: object) -> None:
        raise KeyError("trial")

    with pytest.raises(StorageFault) as info:
        full(Study())
    assert info.value.details and "No space left on device" in Path(info.value.details).read_text()
    with pytest.raises(KeyError):
        other(Study())
