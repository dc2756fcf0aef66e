"""Connecting to Ray: the one place that starts a local Ray or joins a cluster, for the sweep driver, the
evaluation stage and `perturb`.

Importing this module sets the environment Ray and Tune read when they are first imported: Tune's own
loggers off (the Parquet store is the record; loggers a user asks for are added as explicit callbacks), the
legacy reporter (it honours verbose=0), no usage statistics.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from sweep.preflight import PreflightError, address_kind

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Connect to Ray for the duration of a sweep; reuse a Ray the caller already started (tests)."""
    kind = address_kind(address)
    if kind == "local" and "RAY_AUTH_MODE" not in os.environ and "ray" not in sys.modules:
        # The ports Ray opens answer only to this process's token (read when ray is first imported).
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    import ray

    if ray.is_initialized():
        yield
        return
    if kind == "local":
        ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False, logging_level=logging.WARNING)
    else:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except ConnectionError as e:
            raise PreflightError(f"--address {address!r}: {str(e).splitlines()[0]}") from None
    try:
        yield
    finally:
        ray.shutdown()
