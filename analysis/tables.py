"""Plain-text tables and number formatting shared by the CLI, the summary and the report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def fmt(v: Any, digits: int = 4) -> str:
    """A cell as text: floats to `digits` significant digits, None/NaN as '—'."""
    if _missing_scalar(v):
        return "—"
    if isinstance(v, float):
        if math.isnan(v):
            return "—"
        return f"{v:.{digits}g}"
    return str(v)


def mean_std(mean: float | None, std: float | None, digits: int = 3) -> str:
    """'m ± s' (or 'm' when s is undefined, '—' when m is)."""
    if _missing(mean):
        return "—"
    if _missing(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _missing(v: Any) -> bool:
    return _missing_scalar(v) or (isinstance(v, float) and math.isnan(v))


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned with two spaces; numbers right-aligned, text left-aligned."""
    cells = [[fmt(v) for v in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(r[i], (int, float)) or r[i] is None for r in rows) and rows for i in range(len(headers))]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric, strict=True))

    out = [line(list(headers)), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(s.rstrip() for s in out)


def _missing_scalar(v: Any) -> bool:
    """None or pandas' NA, recognised without importing pandas (the sql command never needs it)."""
    return v is None or type(v).__name__ == "NAType"
