"""One live driver per study: a lease on the study folder, kept alive by the driver's heartbeat.

`<study>/driver.lease` (JSON: host, pid, token, command, started, heartbeat) is written by the driver of
`submit` or `resume` before it schedules anything, refreshed every `HEARTBEAT_S` seconds by a thread and
removed when the driver ends. A second driver finds it and is refused, named with the first one's host, pid
and heartbeat age. A lease is over when its driver is known dead (same host, pid gone) or, with `--force`,
when its heartbeat is older than `STALE_AFTER_S` (a driver on another host cannot be asked). Works on any
pyarrow filesystem: creation is atomic on a local disk (a hard link), and on object stores the lease is
read back after a pause, so of two drivers starting together one wins.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import pyarrow.fs as pafs

from workers.store import layout

HEARTBEAT_S = 10.0
STALE_AFTER_S = 120.0  # a heartbeat older than this: the driver is not running (or cannot reach the store)
SETTLE_S = 1.0  # object stores: how long a new lease stands before it is read back


class LeaseHeld(RuntimeError):
    """Another driver holds the study's lease (exit 2, nothing scheduled)."""


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def read_lease(study_uri: str) -> dict[str, Any] | None:
    """The study's lease, or None when no driver holds one (an unreadable lease counts as held, just now)."""
    text = layout.read_text(layout.join_uri(study_uri, layout.LEASE_FILE))
    if text is None:
        return None
    try:
        lease = json.loads(text)
    except ValueError:
        lease = None
    return lease if isinstance(lease, dict) else {"host": "?", "pid": -1, "heartbeat": time.time()}


def lease_state(lease: dict[str, Any], now: float) -> str:
    """'running' (a heartbeat within STALE_AFTER_S from a driver not known dead), 'dead' (this host, its pid
    gone) or 'stale' (no heartbeat for STALE_AFTER_S; another host's driver may still be alive)."""
    if lease.get("host") == socket.gethostname() and not pid_alive(int(lease.get("pid", -1))):
        return "dead"
    return "running" if now - float(lease.get("heartbeat", 0)) < STALE_AFTER_S else "stale"


def describe_lease(lease: dict[str, Any], now: float) -> str:
    """'host H (pid P), heartbeat N s ago'."""
    return (f"host {lease.get('host')} (pid {lease.get('pid')}, `orthosweep {lease.get('command', '?')}`), "
            f"heartbeat {now - float(lease.get('heartbeat', 0)):.0f} s ago")


class Lease:
    """A lease this process holds; `release()` ends it (and its heartbeat)."""

    def __init__(self, study_uri: str, command: str):
        self.uri = layout.join_uri(study_uri, layout.LEASE_FILE)
        self.study_uri = study_uri
        self.token = uuid.uuid4().hex
        now = time.time()
        self.record = {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token, "command": command,
                       "started": now, "heartbeat": now}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost_to: dict[str, Any] | None = None  # the lease that replaced this one (a --force takeover)
        self._made: str | None = None  # the first folder the lease created (removed again if left empty)

    def _text(self) -> str:
        return json.dumps(self.record, sort_keys=True)

    def ours(self) -> bool:
        current = read_lease(self.study_uri)
        return current is not None and current.get("token") == self.token

    def create(self) -> bool:
        """Write the lease where none is; False when another driver's appeared first."""
        fs, path = layout.filesystem(self.uri)
        if isinstance(fs, pafs.LocalFileSystem):  # publish by a hard link, which never replaces a file
            directory = os.path.dirname(path)
            self._made = _first_missing(directory)
            os.makedirs(directory, exist_ok=True)
            tmp = f"{path}.{self.token}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(self._text())
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
            return True
        layout.write_text(self.uri, self._text())
        time.sleep(SETTLE_S)
        return self.ours()

    def replace(self) -> bool:
        """Write the lease over a dead or stale one; False when another driver took it over at the same time."""
        layout.write_text(self.uri, self._text())
        time.sleep(SETTLE_S)
        return self.ours()

    def start_heartbeat(self, every: float = HEARTBEAT_S) -> None:
        self._thread = threading.Thread(target=self._beat, args=(every,), name="orthosweep-lease", daemon=True)
        self._thread.start()

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                current = read_lease(self.study_uri)
                if current is not None and current.get("token") != self.token:
                    self.lost_to = current
                    return
                self.record["heartbeat"] = time.time()
                layout.write_text(self.uri, self._text())
            except Exception:  # noqa: BLE001 - a store that cannot be written stops the sweep elsewhere
                pass

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            if self.ours():
                fs, path = layout.filesystem(self.uri)
                fs.delete_file(path)
                directory = os.path.dirname(path)
                while self._made and directory.startswith(self._made) and not os.listdir(directory):
                    os.rmdir(directory)  # a driver refused at its preflight leaves no folder behind
                    directory = os.path.dirname(directory)
        except Exception:  # noqa: BLE001 - a lease left behind is told dead by its pid or its age
            pass


def _first_missing(directory: str) -> str | None:
    """The outermost folder of `directory`'s path that does not exist yet (None if it exists)."""
    missing = None
    while not os.path.exists(directory):
        missing, directory = directory, os.path.dirname(directory)
    return missing


def acquire(study_uri: str, *, command: str, force: bool = False, out: TextIO | None = None,
            now: Callable[[], float] = time.time) -> Lease:
    """Take the study's lease for this driver, or raise LeaseHeld naming the driver that holds it."""
    out = out or sys.stderr
    lease = Lease(study_uri, command)
    for _ in range(3):  # a lease that vanishes or changes while it is read: look again
        current = read_lease(study_uri)
        if current is None:
            if lease.create():
                return lease
            continue
        state, t = lease_state(current, now()), now()
        if state == "running":
            raise LeaseHeld(f"study {study_uri} is being run by a live driver on {describe_lease(current, t)}; "
                            "only one driver may run a study: wait for it, or stop it and then resume"
                            + (f" (--force is accepted only once its heartbeat is older than {STALE_AFTER_S:.0f} s)"
                               if force else ""))
        if state == "stale" and not force:
            raise LeaseHeld(f"study {study_uri} is leased to a driver on {describe_lease(current, t)}, which may "
                            f"be dead (no heartbeat for over {STALE_AFTER_S:.0f} s); if it is, rerun with --force")
        print(f"[orthosweep] taking over the study from the driver on {describe_lease(current, t)}: "
              + ("that pid no longer runs on this host" if state == "dead" else "its heartbeat is stale (--force)"),
              file=out, flush=True)
        if lease.replace():
            return lease
    current = read_lease(study_uri) or {}
    raise LeaseHeld(f"study {study_uri}: another driver took the lease at the same time "
                    f"({describe_lease(current, now())}); only one driver may run a study")


@contextmanager
def held(study_uri: str, *, command: str, force: bool = False, out: TextIO | None = None) -> Iterator[Lease]:
    """Hold the study's lease, with its heartbeat, while inside."""
    lease = acquire(study_uri, command=command, force=force, out=out)
    lease.start_heartbeat()
    try:
        yield lease
    finally:
        lease.release()
