"""Every figure of a study, as PNG bytes keyed by file stem: what `orthosweep plots` and the report draw."""

from __future__ import annotations

import functools
from collections.abc import Callable

import duckdb
import pandas as pd
from matplotlib.figure import Figure

from analysis import plots as P
from analysis.frames import checkpoint_points, restart_config, restarts, trace_kl_ranks, trace_quantiles
from analysis.groups import attach_groups, configurations
from analysis.traversals import traversal_2d_figure, traversal_figure


def figure_builders(runs: pd.DataFrame, points: pd.DataFrame, study_uri: str | None,
                    config_of: Callable[[str], dict] | None = None,
                    con: duckdb.DuckDBPyConnection | None = None) -> dict[str, Callable[[], Figure]]:
    """Name -> zero-argument function drawing that figure (lazy, so one failure names its figure).
    con: the store, for the training curves (read from the `trace` view; drawn when it has rows)."""
    sampled = points.attrs.get("sampled_from", len(points))
    note = f" ({len(points):,} of {sampled:,} checkpoints sampled)" if sampled > len(points) else ""
    builders: dict[str, Callable[[], Figure]] = {
        "hist_mig": lambda: P.metric_histograms(runs, "mig"),
        "hist_dto": lambda: P.metric_histograms(runs, "dto"),
        "hist_ds": lambda: P.metric_histograms(runs, "ds"),
        "scatter_dto_mig_by_epoch": lambda: P.scatter_dto_vs_metric(points, "mig", title=f"DtO vs MIG{note}"),
        "scatter_dto_ds_by_epoch": lambda: P.scatter_dto_vs_metric(points, "ds", title=f"DtO vs DS{note}"),
        "beta_line_search": lambda: P.beta_line_search(runs, ("ds", "mig", "dto")),
        "violins_mig_over_beta": lambda: P.violins_over(runs, "mig", "beta"),
        "violins_dto_over_beta": lambda: P.violins_over(runs, "dto", "beta"),
        "per_factor_mig": lambda: P.per_factor_mig(runs),
    }
    if con is not None and con.execute("SELECT count(*) FROM (SELECT 1 FROM trace LIMIT 1)").fetchone()[0]:

        configs = configurations(con)  # the curves' groups are the configurations, labelled as everywhere
        builders["training_curves"] = lambda: P.training_curves(attach_groups(trace_quantiles(con), configs))
        builders["training_kl_per_latent"] = lambda: P.kl_per_latent_curves(
            attach_groups(trace_kl_ranks(con), configs))
    if study_uri is not None and config_of is not None:

        builders["traversals_best_worst"] = lambda: traversal_figure(runs, study_uri, config_of)
        builders["traversals_2d_best_worst"] = lambda: traversal_2d_figure(runs, study_uri, config_of)
    return builders


def draw_figures(con: duckdb.DuckDBPyConnection, study_uri: str | None,
                 runs: pd.DataFrame | None = None) -> tuple[dict[str, bytes], dict[str, str]]:
    """(PNG bytes of every figure that has something to draw, name -> why each other one is left out).

    A figure without data (plots.NothingToDraw) is left out rather than drawn as an empty panel; one that
    fails becomes a figure stating the error. runs: the `restarts(con)` frame when the caller has it.
    """
    runs = restarts(con) if runs is None else runs
    points = checkpoint_points(con)
    out, left_out = {}, {}
    for name, build in figure_builders(runs, points, study_uri, functools.partial(restart_config, con), con).items():
        try:
            fig = build()
        except P.NothingToDraw as e:
            left_out[name] = str(e)
            continue
        except Exception as e:  # noqa: BLE001 - one broken figure must not hide the others
            fig = P.message_figure(f"{name} could not be drawn: {type(e).__name__}: {e}", name)
        out[name] = P.figure_png(fig)
    return out, left_out


def all_figures(con: duckdb.DuckDBPyConnection, study_uri: str | None,
                runs: pd.DataFrame | None = None) -> dict[str, bytes]:
    """PNG bytes of every figure that has something to draw (`draw_figures`)."""
    return draw_figures(con, study_uri, runs)[0]
