"""The store views and final_summary on s3:// storage, against a local moto server (no network)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pyarrow.fs as pafs
import pytest

from analysis.summary import final_summary
from testing.synthetic_store import checkpoint_row
from workers.store.files import UnreadableFileWarning
from workers.store.views import connect
from workers.store.write import write_rows


@pytest.fixture(scope="module")
def s3_root(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[tuple[str, pafs.S3FileSystem]]:
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch_module.setenv(k, v)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    fs = pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", allow_bucket_creation=True)
    fs.create_dir("analysis")
    try:
        yield f"s3://analysis/results?endpoint_override={host}:{port}&scheme=http", fs
    finally:
        server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_views_summary_and_corrupt_file_on_s3(s3_root: tuple[str, pafs.S3FileSystem]) -> None:
    root, fs = s3_root
    study = root.replace("/results?", "/results/s3study?")
    write_rows(study, "checkpoints", [checkpoint_row(f"r{i}", 3, dto=float(i), mig=0.1 * i) for i in range(5)])
    write_rows(study, "checkpoints", [checkpoint_row("r0", 3, dto=9.0, mig=0.9, attempt=1)])  # a retry's re-emit
    with fs.open_output_stream("analysis/results/s3study/checkpoints/dataset=synth_lin/model=beta_vae/torn.parquet") \
            as fh:
        fh.write(b"PAR1 torn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        con = connect(study)
    assert any("torn.parquet" in str(w.message) for w in caught if w.category is UnreadableFileWarning)
    assert con.execute("SELECT count(*), sum(dto) FROM runs").fetchall() == [(5, 9.0 + 1 + 2 + 3 + 4)]
    assert connect(root, "s3study").execute("SELECT count(*) FROM checkpoints").fetchall() == [(5,)]
    text = final_summary(study)
    assert "beta_vae" in text and "3.800 ± 3.114" in text  # dto 9, 1, 2, 3, 4
    info = fs.get_file_info("analysis/results/s3study/plots/dto_vs_mig.png")
    assert info.type == pafs.FileType.File and info.size > 1000
