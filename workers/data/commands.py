"""`orthosweep datasets`: list the datasets; `show NAME --out sheet.png` draws one; `prepare NAME` fills
this node's cache ahead of a sweep (otherwise the first trial that needs it builds it)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_BAD_INPUT = 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list the datasets and their factors; 'show' draws a contact sheet")
    p.set_defaults(func=cmd_list)
    inner = p.add_subparsers(dest="datasets_command", metavar="{show,prepare}")
    s = inner.add_parser("show", help="write a contact sheet: one row per factor, only that factor varies")
    _dataset_arguments(s)
    s.add_argument("--out", required=True, help="PNG file to write")
    s.add_argument("--columns", type=int, default=10, help="cells per row (default 10)")
    s.add_argument("--seed", type=int, default=0, help="seed of the base factor combination (default 0)")
    s.set_defaults(func=cmd_show)
    pr = inner.add_parser("prepare", help="build this node's cache of a dataset now (cache dir: "
                                          "$ORTHOSWEEP_CACHE, default ~/.cache/orthosweep)")
    _dataset_arguments(pr)
    pr.set_defaults(func=cmd_prepare)


def _dataset_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="dataset name (see 'orthosweep datasets')")
    p.add_argument("--path", help="official dataset file or folder (dsprites .npz, 3dshapes.h5, MPI3D .npz, the "
                   "SmallNORB or Cars3D folder, MNIST IDX/.npz; see 'orthosweep datasets')")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="another dataset option, e.g. ratio=1.5 (repeatable)")


def dataset_rows() -> list[dict[str, Any]]:
    """One row per dataset: name, observation shape, factors with sizes, points, where the data come from."""
    from .catalog import DATASETS

    return [{"name": name, "observation": "x".join(map(str, info.observation_shape)), "points": info.points,
             "factors": ", ".join(f"{n}={s if s is not None else 'cont'}" for n, s in info.factors) or "none",
             "options": ", ".join(info.options) or "none", "source": info.source}
            for name, info in DATASETS.items()]


def cmd_list(args: argparse.Namespace) -> int:
    for r in dataset_rows():
        print(f"{r['name']:<16} obs {r['observation']:<8} points {r['points']}")
        print(f"{'':<16} factors: {r['factors']}")
        print(f"{'':<16} options: {r['options']}; data: {r['source']}")
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


def _open(args: argparse.Namespace):
    from . import load

    options = parse_options(args.option)
    if args.path is not None:
        options["path"] = args.path
    return load(args.name, **options)


def cmd_show(args: argparse.Namespace) -> int:
    from .base import DataError
    from .contact_sheet import write_contact_sheet

    try:
        ds = _open(args)
        out = write_contact_sheet(ds, args.out, columns=args.columns, seed=args.seed)
    except DataError as e:
        print(f"orthosweep datasets show: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{ds.name}: wrote {out} ({ds.num_factors or 'label'} rows x {args.columns} columns)")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    import time

    from .base import DataError
    from .cache import cache_dir
    from .stored import StoredGridDataset

    t0 = time.monotonic()
    try:
        ds = _open(args)  # official files are converted into the cache while opening
        build = getattr(ds, "build_cache", None)
        if build is not None:
            build()
    except DataError as e:
        print(f"orthosweep datasets prepare: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    cached = build is not None or isinstance(ds, StoredGridDataset)
    print(f"{ds.name}: {len(ds)} points ready in {time.monotonic() - t0:.1f} s"
          + (f" (node cache {cache_dir()})" if cached else " (held in memory; nothing to cache)"))
    return 0
