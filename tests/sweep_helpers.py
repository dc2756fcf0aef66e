"""Helpers shared by the sweep tests: tiny study files, a moto S3 server, store queries through DuckDB."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from testing.tiny_study import STUB, write_study  # noqa: F401  (re-exported for the tests)

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    """A moto S3 server on 127.0.0.1 (credentials set in os.environ); returns (process, endpoint host:port)."""
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
                       "AWS_EC2_METADATA_DISABLED": "true"})
    port = free_port()
    proc = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def s3_uri(endpoint: str, bucket: str, prefix: str) -> str:
    return f"s3://{bucket}/{prefix}?endpoint_override={endpoint}&scheme=http&region=us-east-1"


def make_bucket(endpoint: str, bucket: str) -> None:
    import pyarrow.fs as pafs

    fs, _ = pafs.FileSystem.from_uri(f"s3://{bucket}?endpoint_override={endpoint}&scheme=http&region=us-east-1"
                                     "&allow_bucket_creation=true")
    fs.create_dir(bucket)


def view_counts(study_uri: str) -> tuple[int, int, int]:
    """(rows in `checkpoints_raw`, rows in the dedup `checkpoints` view, distinct (run_key, epoch))."""
    from workers.store.views import connect

    con = connect(study_uri)
    raw = con.execute("SELECT count(*) FROM checkpoints_raw").fetchone()[0]
    dedup = con.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
    distinct = con.execute("SELECT count(DISTINCT (run_key, epoch)) FROM checkpoints").fetchone()[0]
    return raw, dedup, distinct


def view_rows(study_uri: str, columns: str = "run_key, epoch, status, loss, dto, mig") -> list[tuple]:
    from workers.store.views import connect

    return connect(study_uri).execute(f"SELECT {columns} FROM checkpoints ORDER BY run_key, epoch").fetchall()
