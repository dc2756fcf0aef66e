"""Test-wide settings: small thread counts (2-core CI), no Ray telemetry, an isolated dataset cache."""

from __future__ import annotations

import os

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _isolated_dataset_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Datasets built by tests go to a per-session cache unless the caller chose one (CI may reuse it)."""
    if "ORTHOSWEEP_CACHE" not in os.environ:
        os.environ["ORTHOSWEEP_CACHE"] = str(tmp_path_factory.mktemp("orthosweep-cache"))


@pytest.fixture(autouse=True)
def _torch_threads() -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dsprites():
    """The procedural dSprites grid (renders on demand; the session's dataset cache)."""
    from workers.data import load

    return load("dsprites")


@pytest.fixture(scope="module")
def shapes3d():
    """The procedural Shapes3D grid."""
    from workers.data import load

    return load("shapes3d")
