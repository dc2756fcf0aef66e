"""The `orthosweep` command: one entry point, subcommands registered by the package that owns them.

The command families are the `orthosweep.commands` entry points of pyproject.toml (sweep.extensions):
submit, resume, status, compact and validate (sweep), sql, views, stats, plots and report (analysis),
compare (measured vs published), datasets (workers.data). Each family imports its heavy modules only
inside the command that needs them, so `--help` and the read-only commands start fast.
"""

from __future__ import annotations

import argparse
import sys

from sweep.errors import SpecError
from sweep.extensions import command_modules

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orthosweep", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in command_modules():
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    from workers.data.errors import DataError  # the workers.data package imports numpy and pyarrow

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
