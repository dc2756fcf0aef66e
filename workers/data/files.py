"""Checks shared by the loaders of user-supplied dataset files."""

from __future__ import annotations

from pathlib import Path

from .base import DataError


def check_file(path: str | Path, expected: str) -> Path:
    """`path` as a Path if it is an existing regular file; else DataError saying what was expected."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"dataset file {str(p)!r} does not exist; expected {expected}")
    if p.is_dir():
        raise DataError(f"dataset path {str(p)!r} is a directory; expected {expected}")
    return p
