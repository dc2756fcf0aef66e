"""`orthosweep datasets`: list the datasets; `orthosweep datasets show NAME --out sheet.png` draws one."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_BAD_INPUT = 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list the datasets and their factors; 'show' draws a contact sheet")
    p.set_defaults(func=cmd_list)
    inner = p.add_subparsers(dest="datasets_command", metavar="{show}")
    s = inner.add_parser("show", help="write a contact sheet: one row per factor, only that factor varies")
    s.add_argument("name", help="dataset name (see 'orthosweep datasets')")
    s.add_argument("--out", required=True, help="PNG file to write")
    s.add_argument("--path", help="official dataset file (dsprites .npz, 3dshapes.h5, MNIST IDX/.npz)")
    s.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="another dataset option, e.g. ratio=1.5 (repeatable)")
    s.add_argument("--columns", type=int, default=10, help="cells per row (default 10)")
    s.add_argument("--seed", type=int, default=0, help="seed of the base factor combination (default 0)")
    s.set_defaults(func=cmd_show)


def dataset_rows() -> list[dict[str, Any]]:
    """One row per dataset: name, observation shape, factors with sizes, points, where the data come from."""
    from . import dsprites, shapes3d
    from .catalog import DATASETS

    factors = {
        "synth_lin": ([("v0", None), ("v1", None)], "n (default 50000)", "generated from data_seed"),
        "synth_nonlin": ([("v0", None), ("v1", None)], "n (default 50000)", "generated from data_seed"),
        "dsprites": (list(zip(dsprites.FACTOR_NAMES, dsprites.FACTOR_SIZES, strict=True)), "737280",
                     "procedural (on demand) or path= official .npz"),
        "shapes3d": (list(zip(shapes3d.FACTOR_NAMES, shapes3d.FACTOR_SIZES, strict=True)), "480000",
                     "procedural (on demand) or path= official 3dshapes.h5"),
        "mnist": ([], "as in the files", "path= IDX directory/file or .npz (labels kept)"),
        "fashion_mnist": ([], "as in the files", "path= IDX directory/file or .npz (labels kept)"),
    }
    rows = []
    for name, info in DATASETS.items():
        fs, points, source = factors.get(name, ([], "?", "?"))
        rows.append({"name": name, "observation": "x".join(map(str, info.observation_shape)), "points": points,
                     "factors": ", ".join(f"{n}={s if s is not None else 'cont'}" for n, s in fs) or "none",
                     "options": ", ".join(info.options) or "none", "source": source})
    return rows


def cmd_list(args: argparse.Namespace) -> int:
    for r in dataset_rows():
        print(f"{r['name']:<14} obs {r['observation']:<8} points {r['points']}")
        print(f"{'':<14} factors: {r['factors']}")
        print(f"{'':<14} options: {r['options']}; data: {r['source']}")
    return 0


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE strings → dict, values typed as YAML scalars (1.5 → float, 3 → int)."""
    import yaml

    from .base import DataError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DataError(f"--option {pair!r}: expected KEY=VALUE, e.g. ratio=1.5")
        out[key.strip()] = yaml.safe_load(value)
    return out


def cmd_show(args: argparse.Namespace) -> int:
    from . import load
    from .base import DataError
    from .contact_sheet import write_contact_sheet

    try:
        options = parse_options(args.option)
        if args.path is not None:
            options["path"] = args.path
        ds = load(args.name, **options)
        out = write_contact_sheet(ds, args.out, columns=args.columns, seed=args.seed)
    except DataError as e:
        print(f"orthosweep datasets show: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{ds.name}: wrote {out} ({ds.num_factors or 'label'} rows x {args.columns} columns)")
    return 0
