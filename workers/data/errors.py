"""The error a bad dataset name, option or file raises, importable without numpy (the CLI catches it)."""

from __future__ import annotations


class DataError(ValueError):
    """Bad dataset name, option or file. The message names the field or file and what was expected."""
