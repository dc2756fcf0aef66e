"""What other packages add to the `orthosweep` command, declared as entry points in pyproject.toml.

    orthosweep.commands     modules with `register(subparsers)`: their subcommands join the CLI
    orthosweep.after_sweep  functions `(study_uri) -> str` whose text `submit` and `resume` print at the end

The sweep layer names no package above it: the analysis plugs its commands and the end-of-sweep summary
in through these groups, so imports still run one way (analysis -> sweep -> workers).
"""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution
from types import ModuleType
from typing import Any

DISTRIBUTION = "orthosweep"


def entry_points(group: str) -> list[EntryPoint]:
    """This distribution's entry points of `group`, in the order pyproject.toml declares them."""
    try:
        eps = distribution(DISTRIBUTION).entry_points
    except PackageNotFoundError:
        raise SystemExit("orthosweep is not installed in this environment: run `make venv` (or "
                         "`pip install -e .`) so that its commands are registered") from None
    return [ep for ep in eps if ep.group == group]


def command_modules() -> list[ModuleType]:
    return [importlib.import_module(ep.value) for ep in entry_points("orthosweep.commands")]


def after_sweep(study_uri: str) -> list[str]:
    """The texts of every `orthosweep.after_sweep` function for this study (a failing one says why)."""
    out = []
    for ep in entry_points("orthosweep.after_sweep"):
        fn: Any = ep.load()
        out.append(str(fn(study_uri)))
    return out
