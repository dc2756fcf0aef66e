"""`orthosweep datasets`: list the datasets; `show NAME --out sheet.png` draws one; `prepare NAME` fills
this node's cache ahead of a sweep (otherwise the first trial that needs it builds it); `pca NAME` prints the
reconstruction error from subsets of its principal axes (Bhowal et al. 2024, Table 7)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import load
from .base import DataError
from .cache import cache_dir
from .catalog import DATASETS
from .contact_sheet import write_contact_sheet
from .pca import parse_subsets, reconstruction_errors, subset_label
from .stored import StoredGridDataset

EXIT_BAD_INPUT = 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list the datasets and their factors; 'show' draws a contact sheet")
    p.set_defaults(func=cmd_list)
    inner = p.add_subparsers(dest="datasets_command", metavar="{show,prepare,pca}")
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
    pc = inner.add_parser("pca", help="reconstruction error from subsets of the principal axes of N observations "
                                      "(Bhowal et al. 2024, Table 7)")
    _dataset_arguments(pc)
    pc.add_argument("--n", type=int, default=5000, help="observations drawn without replacement (default 5000)")
    pc.add_argument("--axes", default="1500,2000,2500,3000,2000-3000,2500-3000",
                    help="comma-separated subsets: K = the first K axes, A-B = axes A+1 to B, sorted by variance "
                         "(default: the paper's Table 7 columns)")
    pc.add_argument("--seed", type=int, default=0, help="seed of the drawn observations (default 0)")
    pc.set_defaults(func=cmd_pca)


def _dataset_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="dataset name (see 'orthosweep datasets')")
    p.add_argument("--path", help="official dataset file or folder (dsprites .npz, 3dshapes.h5, MPI3D .npz, the "
                   "SmallNORB or Cars3D folder, MNIST IDX/.npz; see 'orthosweep datasets')")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="another dataset option, e.g. ratio=1.5 (repeatable)")


def dataset_rows() -> list[dict[str, Any]]:
    """One row per dataset: name, observation shape, factors with sizes, points, where the data come from."""
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


    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DataError(f"--option {pair!r}: expected KEY=VALUE, e.g. ratio=1.5")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _open(args: argparse.Namespace):
    options = parse_options(args.option)
    if args.path is not None:
        options["path"] = args.path
    return load(args.name, **options)


def cmd_show(args: argparse.Namespace) -> int:
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


def cmd_pca(args: argparse.Namespace) -> int:
    import time

    import numpy as np


    t0 = time.monotonic()
    try:
        subsets = parse_subsets(args.axes)
        if args.n < 2:
            raise DataError(f"--n {args.n}: need at least 2 observations")
        ds = _open(args)
    except (DataError, ValueError) as e:
        print(f"orthosweep datasets pca: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    rng = np.random.default_rng(args.seed)
    idx = np.sort(rng.choice(len(ds), size=min(args.n, len(ds)), replace=False))
    X = np.asarray(ds.observations_at(idx), dtype=np.float32).reshape(len(idx), -1)
    rows = reconstruction_errors(X, subsets)
    print(f"{ds.name}: {len(idx)} observations of {X.shape[1]} values (seed {args.seed}); principal axes sorted "
          "by variance; error = mean squared error per value of the reconstruction x̄ + P Pᵀ(x − x̄)")
    print(f"{'axes used':<16} {'axes':>6} {'MSE':>12} {'variance kept':>14}")
    for r in rows:
        print(f"{subset_label(r['start'], r['stop']):<16} {r['axes']:>6} {r['mse']:>12.6f} {r['variance_kept']:>14.4f}")
    print(f"({time.monotonic() - t0:.1f} s)")
    return 0
