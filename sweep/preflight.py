"""Checks at the edges, before anything is scheduled: address reachable, storage writable, resources satisfiable.

Each failure raises `PreflightError` with one message naming the input and the fix; the CLI prints it and
exits 2 within seconds (no hang on a dead address or a silent object store).
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlparse

from workers.store.layout import filesystem, join_uri

T = TypeVar("T")

CONNECT_TIMEOUT_S = 3.0
STORAGE_TIMEOUT_S = 20.0


class PreflightError(RuntimeError):
    """Bad input detected at the edge (address, storage, resources): exit code 2, nothing scheduled."""


def address_kind(address: str | None) -> str:
    """'local' (in-process Ray), 'jobs' (http(s):// dashboard: Jobs API), 'client' (ray://), 'auto' or 'gcs'."""
    if address is None or address == "local":
        return "local"
    if address.startswith(("http://", "https://")):
        return "jobs"
    if address.startswith("ray://"):
        return "client"
    if address == "auto":
        return "auto"
    return "gcs"


def check_address(address: str | None, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A TCP connection to the address's host:port must open within `timeout` seconds."""
    kind = address_kind(address)
    if kind in ("local", "auto"):
        return
    assert address is not None
    url = urlparse(address if "://" in address else f"tcp://{address}")
    default_port = {"jobs": 8265 if url.scheme == "http" else 443, "client": 10001, "gcs": 6379}[kind]
    host, port = url.hostname, url.port or default_port
    if not host:
        raise PreflightError(f"--address {address!r}: no host name; expected e.g. http://HEAD:8265, "
                             "ray://HEAD:10001, HEAD:6379 or auto")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        raise PreflightError(
            f"--address {address!r}: cannot connect to {host}:{port} within {timeout:.0f} s ({e.strerror or e}); "
            "check that the Ray head is up (`ray status` on it) and that the port is reachable from here"
        ) from None


def with_timeout(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run `fn` in a daemon thread; raise PreflightError if it does not return within `timeout` seconds."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise PreflightError(f"{what}: no answer within {timeout:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def check_storage(study_uri: str, timeout: float = STORAGE_TIMEOUT_S) -> None:
    """Write and delete a probe object in the study folder; raise PreflightError if that fails or hangs.

    Local paths were already checked by the spec without writing; object stores can only be checked by
    trying (credentials, bucket, endpoint).
    """
    if "://" not in study_uri or study_uri.startswith("file://"):
        return

    def probe() -> None:
        fs, _ = filesystem(study_uri)
        _, path = filesystem(join_uri(study_uri, f".orthosweep-probe-{uuid.uuid4().hex[:8]}"))
        with fs.open_output_stream(path) as out:
            out.write(b"probe")
        fs.delete_file(path)

    try:
        with_timeout(probe, timeout, f"storage {study_uri!r}")
    except PreflightError as e:
        raise PreflightError(f"{e}; check the endpoint (endpoint_override=...) and network") from None
    except Exception as e:  # noqa: BLE001 - pyarrow raises OSError/ValueError/ArrowInvalid variants
        raise PreflightError(
            f"storage {study_uri!r} cannot be written: {str(e).splitlines()[0]}; check the bucket exists, the "
            "credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile) and endpoint_override"
        ) from None


def largest_node(nodes: list[dict[str, Any]]) -> dict[str, float]:
    """Per resource, the largest amount any single alive node offers (CPU, GPU)."""
    best = {"CPU": 0.0, "GPU": 0.0}
    for n in nodes:
        if not n.get("Alive", True):
            continue
        for k in best:
            best[k] = max(best[k], float(n.get("Resources", {}).get(k, 0.0)))
    return best


def check_resources(cpu: float, gpu: float, nodes: list[dict[str, Any]]) -> str | None:
    """None if one alive node can hold one trial (cpu, gpu); else a message naming the shortfall and the fix."""
    for n in nodes:
        res = n.get("Resources", {})
        if n.get("Alive", True) and res.get("CPU", 0.0) >= cpu and res.get("GPU", 0.0) >= gpu:
            return None
    best = largest_node(nodes)
    return (f"resources: each trial asks for cpu={cpu:g}, gpu={gpu:g}, but no node of this Ray cluster offers that "
            f"(largest node: CPU={best['CPU']:g}, GPU={best['GPU']:g}); lower resources.cpu/resources.gpu in the "
            "study file or submit to a cluster that has such nodes (--address)")


def wait_for_resources(cpu: float, gpu: float, nodes: Callable[[], list[dict[str, Any]]], timeout: float,
                       *, poll: float = 5.0, say: Callable[[str], None] = print) -> None:
    """Return once one node can hold a trial; raise PreflightError after `timeout` seconds (0: check once).

    On a cluster that autoscales, the node type a study needs may not exist yet (GPU workers at
    min_workers: 0): the caller asks the autoscaler for one bundle and waits here, saying so at once.
    """
    problem = check_resources(cpu, gpu, nodes())
    if problem is None:
        return
    if timeout <= 0:
        raise PreflightError(problem)
    say(f"[orthosweep] no node offers cpu={cpu:g}, gpu={gpu:g} yet; waiting up to {timeout:.0f} s for the "
        "autoscaler to add one (Ctrl-C to stop)")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
        problem = check_resources(cpu, gpu, nodes())
        if problem is None:
            return
    raise PreflightError(f"{problem} (waited {timeout:.0f} s for the autoscaler)")
