"""CLI commands of the analysis: sql, views, stats, plots, report, show, compare (registered into `orthosweep`)."""

from __future__ import annotations

import argparse
import sys

from workers.metrics.registry import METRICS
from workers.models.objectives import OBJECTIVES

EXIT_ERROR = 1
EXIT_BAD_INPUT = 2


def _add_location(p: argparse.ArgumentParser) -> None:
    p.add_argument("study_dir", metavar="STUDY_DIR",
                   help="a study folder <storage>/<study> (local path or s3://...), or a storage root with --study")
    p.add_argument("--study", action="append", metavar="NAME",
                   help="study name under a storage root (repeat to query several studies together)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sql", help="run read-only SQL over a study's Parquet store (interactive without a query)")
    _add_location(p)
    p.add_argument("query", nargs="?", help="SQL (SELECT ...); omit for an interactive prompt")
    p.add_argument("--format", choices=("table", "csv", "json", "parquet"), default="table")
    p.add_argument("--out", metavar="FILE", help="write the result to FILE instead of stdout")
    p.add_argument("--max-rows", type=int, default=200, help="rows shown by --format table on stdout (default 200)")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("views", help="document the SQL views and their columns")
    p.add_argument("study_dir", metavar="STUDY_DIR", nargs="?",
                   help="optional study folder: also list the columns with their types")
    p.add_argument("--study", action="append", metavar="NAME")
    p.set_defaults(func=cmd_views)

    p = sub.add_parser("stats", help="restart statistics: per group, entangled vs disentangled, correlations")
    _add_location(p)
    p.add_argument("--metric", default="mig",
                   help="metric that splits restarts (default mig); with an embedding split, the metric described")
    p.add_argument("--split", choices=("topk", "threshold", "mixture", "aligned", "mixed", "polar"), default="topk",
                   help="topk | threshold | mixture of --metric, or by the embedding metric's restart label: "
                        "aligned (aligned vs linearly mixed or polar), mixed (aligned vs linearly mixed), "
                        "polar (not polar vs polar)")
    p.add_argument("--k", type=int, default=4, help="topk: k best vs k worst restarts (thesis: 4)")
    p.add_argument("--threshold", type=float, help="threshold split: disentangled iff metric >= value")
    p.add_argument("--epoch", type=int, help="checkpoint epoch to analyse (default: each restart's last)")
    p.add_argument("--include-overpruned", action="store_true",
                   help="keep restarts with fewer active units than factors (excluded by default, as in the thesis)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for correlation intervals")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("plots", help="write every figure as PNG")
    _add_location(p)
    p.add_argument("--out", metavar="DIR", help="output folder (default <study_dir>/plots)")
    p.set_defaults(func=cmd_plots)

    p = sub.add_parser("report", help="one self-contained HTML report (spec, progress, tables, statistics, figures)")
    _add_location(p)
    p.add_argument("--out", metavar="FILE", help="output file (default <study_dir>/report.html)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for correlation intervals")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("show", help="one stored restart as figures: reconstructions, prior samples, 1-d traversals "
                       "of every active latent around encoded points, a 2-d traversal (PNG, and an animated GIF)")
    p.add_argument("study_dir", metavar="STUDY_DIR", help="a study folder <storage>/<study> (local path or s3://...)")
    p.add_argument("run_key", metavar="RUN_KEY", help="the restart's run_key (or an unambiguous prefix of it)")
    p.add_argument("--epoch", type=int, help="a checkpoint epoch whose weights were saved (default: the last)")
    p.add_argument("--out", metavar="DIR", help="output folder (default <study_dir>/show/<run_key>/e<epoch>)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("compare", help="measured vs published numbers of a paper study (Markdown)")
    p.add_argument("study_dir", nargs="+", help="study folder(s) <storage>/<study>")
    p.set_defaults(func=cmd_compare)


class _Opened:
    """A read-only connection plus the single study folder it reads (None when several)."""

    def __init__(self, args: argparse.Namespace, views: list[str] | None = None):
        from workers.store.layout import resolve_studies, warn_renamed
        from workers.store.plan import stored_study_name
        from workers.store.views import views_connection

        locs = resolve_studies(args.study_dir, args.study)
        for loc in locs:  # a copied or renamed folder is read as it is, with a warning
            warn_renamed(loc.uri, stored_study_name(loc.uri))
        self.con = views_connection(locs, views=views)
        self.study_uri = locs[0].uri if len(locs) == 1 else None


def _open(args: argparse.Namespace, views: list[str] | None = None) -> _Opened | int:
    """The opened store (with `views` and what they read; None: every view), or an exit code after
    printing why it cannot be opened."""
    try:
        return _Opened(args, views)
    except FileNotFoundError as e:
        return _fail(str(e))


def _fail(msg: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return code


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    from analysis.sqlout import interactive, run_query
    from workers.store.views import ReadOnlyError, views_named

    if args.format == "parquet" and not args.out:
        return _fail("--format parquet writes a binary file: give --out FILE")
    opened = _open(args, None if args.query is None else views_named(args.query))
    if isinstance(opened, int):
        return opened
    if args.query is None:
        return interactive(opened.con)
    try:
        run_query(opened.con, args.query, args.format, args.out, args.max_rows)
    except ReadOnlyError as e:
        return _fail(str(e))
    except duckdb.Error as e:
        return _fail(f"{type(e).__name__}: {e}", EXIT_ERROR)
    return 0


def cmd_views(args: argparse.Namespace) -> int:
    from workers.store.views import MERGE_RULE, VIEWS, view_columns, views_connection

    if args.study_dir:
        opened = _open(args)
        if isinstance(opened, int):
            return opened
        con = opened.con
    else:
        con = views_connection([])
    columns = view_columns(con)
    base = columns["checkpoints"]
    for name, (_, doc) in VIEWS.items():
        print(f"{name}\n    {doc}")
        cols = columns[name]
        extra = [c for c in cols if c not in base]
        if name != "checkpoints" and len(extra) < len(cols) and all(c in cols for c in base):
            print("    columns: those of checkpoints" + (f", plus {', '.join(f'{c} {t}' for c, t in extra)}"
                                                       if extra else ""))
        else:
            print("    columns: " + ", ".join(f"{c} {t}" for c, t in cols))
    print(f"\nmerging of later evaluations (orthosweep evaluate, eval.mode async):\n    {MERGE_RULE}")
    print("\nmetrics (eval.metrics, orthosweep evaluate --metrics) and the columns each writes:")
    for m in METRICS.values():
        scope = " [per configuration: evaluation stage]" if m.scope == "configuration" else ""
        print(f"    {m.name}: {', '.join(m.columns)}{scope}\n        {m.doc}")
    print("\nobjectives (grid.model) and their hyperparameters (the hparams column; hparams->>'name' in SQL):")
    for o in OBJECTIVES.values():
        takes = ", ".join(f"{h} ({hp.describe_range()})" for h, hp in o.hparams.items()) or "none"
        traits = [t for t, on in (("paired", o.paired), ("regulariser scaled on synthetic sets", o.scaled_regularizer),
                                  (f"posterior {o.posterior}", True)) if on]
        print(f"    {o.name}: {takes}; {'; '.join(traits)}\n        {o.doc}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from analysis.frames import SCALAR_METRICS
    from analysis.report import stats_text

    if args.split == "threshold" and args.threshold is None:
        return _fail("--split threshold needs --threshold VALUE")
    if args.metric not in SCALAR_METRICS:
        return _fail(f"--metric {args.metric!r} is not a metric column; allowed: {', '.join(SCALAR_METRICS)}")
    opened = _open(args)
    if isinstance(opened, int):
        return opened
    print(stats_text(opened.con, metric=args.metric, split=args.split, k=args.k, threshold=args.threshold,
                     epoch=args.epoch, exclude_overpruned=not args.include_overpruned,
                     n_boot=args.bootstrap, as_json=args.format == "json"))
    return 0


def _outputs(args: argparse.Namespace, default_name: str, write) -> int:  # noqa: ANN001
    """Open the store, then `write(opened, out)` where out is --out or `<study folder>/<default_name>`."""
    from workers.store.layout import join_uri

    opened = _open(args)
    if isinstance(opened, int):
        return opened
    write(opened, args.out or join_uri(opened.study_uri or args.study_dir, default_name))
    return 0


def cmd_plots(args: argparse.Namespace) -> int:
    from analysis.figures import draw_figures
    from workers.store.layout import join_uri, write_bytes

    def write(opened: _Opened, out: str) -> None:
        figures, left_out = draw_figures(opened.con, opened.study_uri)
        for name, png in figures.items():
            print(write_bytes(join_uri(out, f"{name}.png"), png))
        for name, why in left_out.items():
            print(f"left out {name}: {why}")

    return _outputs(args, "plots", write)


def cmd_report(args: argparse.Namespace) -> int:
    from analysis.report import build_report
    from workers.store.layout import write_bytes

    def write(opened: _Opened, out: str) -> None:
        html = build_report(opened.con, opened.study_uri or args.study_dir, n_boot=args.bootstrap)
        print(write_bytes(out, html.encode("utf-8")))

    return _outputs(args, "report.html", write)


def cmd_show(args: argparse.Namespace) -> int:
    from analysis.restart import UnknownRestart
    from analysis.show import write_views

    try:
        written = write_views(args.study_dir, args.run_key, args.epoch, args.out)
    except (UnknownRestart, FileNotFoundError) as e:
        return _fail(str(e))
    for path in written.values():
        print(path)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from analysis.reproduction import study_markdown

    for d in args.study_dir:
        print(study_markdown(d))
    return 0
