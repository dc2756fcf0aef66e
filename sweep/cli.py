"""The `orthosweep` command: one entry point, subcommands registered by the package that owns them.

sweep.commands          submit, resume, status, compact, validate
analysis.commands       sql, views, stats, plots, report
analysis.reproduction   compare (measured vs published)
workers.data.commands   datasets
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = ("sweep.commands", "analysis.commands", "analysis.reproduction", "workers.data.commands")

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orthosweep", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:  # a command family not built yet must not break the others
            if e.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from sweep.spec import SpecError
    from workers.data.base import DataError

    try:
        return int(args.func(args) or 0)
    except (SpecError, DataError) as e:  # bad input: one clear message, nothing scheduled
        print(f"error: {e}" if isinstance(e, DataError) else str(e), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
