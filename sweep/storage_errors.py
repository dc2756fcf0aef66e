"""A store that cannot be written (a full disk, no permission, a vanished bucket) stops the sweep once.

Such a write fails again on every retry, so the first one ends the sweep: no trial is retried, no failure
row is attempted, and the CLI prints one line naming the storage path, what failed, what to do and how many
restarts the store holds complete. Tracebacks go to a details log, not to the terminal.

`fault_in(text, study_uri)` recognises such a failure in an error's text (a Ray task error arrives as
text); `StorageFault` is the one exception the driver raises for it; `StorageGuard` (a Tune callback with
its stopper) watches the trials of one experiment.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sweep.preflight import PreflightError
from workers.store.layout import filesystem

F = TypeVar("F", bound=Callable[..., Any])

# (pattern in an error's text, what failed, what to do before resuming); the first match wins
_KINDS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"No space left on device|errno 28\b|ENOSPC", re.I), "no space left on the device", "free space"),
    (re.compile(r"Disk quota exceeded|errno 122\b|EDQUOT", re.I), "disk quota exceeded", "free space"),
    (re.compile(r"Read-only file system|errno 30\b|EROFS", re.I), "the filesystem is read-only",
     "make it writable"),
    (re.compile(r"NoSuchBucket|NO_SUCH_BUCKET|bucket does not exist|Bucket '[^']*' not found", re.I),
     "the bucket does not exist", "create the bucket (or point storage at one that exists)"),
)
# permission errors count only when they name the study folder (a dataset file can be unreadable too)
_PERMISSION = re.compile(r"Permission denied|errno 13\b|AccessDenied|ACCESS_DENIED|Forbidden", re.I)

# Ray's loggers that print a traceback per failed trial or sync; storage failures are kept off the terminal
_RAY_LOGGERS = ("ray.tune.execution.tune_controller", "ray.tune.execution.experiment_state", "ray.tune.tune",
               "ray.train._internal.syncer", "ray._private.worker")


class StorageFault(RuntimeError):
    """The study folder cannot be written: `problem` (what failed), `advice` (what to do), `detail` (the
    error's line)."""

    def __init__(self, study_uri: str, problem: str, advice: str, detail: str):
        self.study_uri, self.problem, self.advice, self.detail = study_uri, problem, advice, detail
        self.details: str | None = None  # the details log, once written
        super().__init__(f"storage {study_uri}: {problem} ({detail})")

    def message(self, complete: int | None, total: int) -> str:
        """The one line the CLI prints (`complete`: restarts complete in the store, None if unreadable)."""
        held = (f"{complete} of {total} restarts are complete in the store" if complete is not None
                else "the store could not be read to count complete restarts")
        return (f"error: storage {self.study_uri}: writing failed: {self.problem} ({self.detail}); "
                f"{self.advice}, then `orthosweep resume {self.study_uri}` ({held}; nothing is lost"
                + (f"; details in {self.details})" if self.details else ")"))


def _study_paths(study_uri: str) -> tuple[str, ...]:
    """How the study folder may appear in an error's text (as given, and as the filesystem's path)."""
    try:
        return (study_uri.split("?", 1)[0], filesystem(study_uri)[1])
    except Exception:  # noqa: BLE001 - a URI pyarrow cannot parse still names itself
        return (study_uri.split("?", 1)[0],)


def fault_in(text: str, study_uri: str) -> StorageFault | None:
    """The StorageFault an error's text shows, or None when it is some other error."""
    for pattern, problem, advice in _KINDS:
        m = pattern.search(text)
        if m:
            return StorageFault(study_uri, problem, advice, _line_of(text, m.start()))
    m = _PERMISSION.search(text)
    if m and any(p and p in text for p in _study_paths(study_uri)):
        return StorageFault(study_uri, "permission denied", "give this user write access",
                            _line_of(text, m.start()))
    return None


def fault_of(exc: BaseException, study_uri: str) -> StorageFault | None:
    """The StorageFault behind an exception (its chain and, for Ray and Tune errors, the text they carry)."""
    if isinstance(exc, StorageFault):
        return exc
    return fault_in("".join(traceback.format_exception(exc)), study_uri)


def _line_of(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start:end if end >= 0 else None].strip()
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    return line if len(line) <= 200 else line[:199] + "…"


def raises_storage_faults(fn: F) -> F:
    """Decorate a function taking a Study first: any error of it that is a storage failure is re-raised as
    the StorageFault of that study's folder (a PreflightError stays one: the edge refused, nothing ran)."""

    @functools.wraps(fn)
    def wrapper(study: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(study, *args, **kwargs)
        except StorageFault as fault:
            fault.details = DetailsLog(study.name).existing()
            raise
        except PreflightError:  # refused at the edge, nothing scheduled: its own message (exit 2)
            raise
        except Exception as e:
            fault = fault_of(e, study.study_uri)
            if fault is None:
                raise
            log = DetailsLog(study.name)
            log.add("".join(traceback.format_exception(e)))
            fault.details = log.existing()
            raise fault from e

    return wrapper  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------
# The details log
# --------------------------------------------------------------------------------------------------

class DetailsLog:
    """Tracebacks kept off the terminal: a file in the temporary directory (not the study folder, whose
    disk may be the full one), created at the first entry."""

    def __init__(self, study: str):
        self.path = os.path.join(tempfile.gettempdir(), f"orthosweep-{study}-{os.getpid()}.log")

    def add(self, text: str) -> None:
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n{text.rstrip()}\n")
        except OSError:
            pass

    def existing(self) -> str | None:
        """The log's path if anything was written to it."""
        return self.path if os.path.exists(self.path) else None


class _KeepStorageFaultsOff(logging.Filter):
    def __init__(self, study_uri: str, log: DetailsLog, seen: Callable[[StorageFault], None]):
        super().__init__()
        self.study_uri, self.log, self.seen = study_uri, log, seen
        self.formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def filter(self, record: logging.LogRecord) -> bool:
        text = self.formatter.format(record)
        fault = fault_in(text, self.study_uri)
        if fault is None:
            return True
        self.seen(fault)
        self.log.add(text)
        return False


@contextmanager
def storage_faults_to(log: DetailsLog, study_uri: str, seen: Callable[[StorageFault], None]) -> Iterator[None]:
    """While inside: Ray's per-trial and sync tracebacks that show a storage failure go to `log`, and `seen`
    hears of the failure."""
    flt = _KeepStorageFaultsOff(study_uri, log, seen)
    loggers = [logging.getLogger(name) for name in _RAY_LOGGERS]
    for lg in loggers:
        lg.addFilter(flt)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(flt)
