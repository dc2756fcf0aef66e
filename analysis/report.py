"""Study statistics as tables (for `orthosweep stats`) and the self-contained HTML report.

`study_statistics` gathers everything from a read-only connection; `stats_text` renders it as text or
JSON; `build_report` renders spec, progress, the per-group table (mean ± std of every metric, like the
paper's Table 3.3), restart statistics, aligned / linearly mixed / polar restarts (the embedding metric,
thesis §4.3.6),
correlations and every figure (PNG embedded as base64).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from analysis.bhowal import OD_NORM, OD_NOTE, with_normalised_od
from analysis.frames import metrics_present, n_factors, restarts
from analysis.groups import configurations, label_map
from analysis.restart import open_restart
from analysis.stats import (
    EMBEDDING_SPLITS,
    GROUP_BY,
    POLAR_COLUMN,
    SplitMethod,
    correlation_table,
    embedding_labels,
    embedding_table,
    group_table,
    overpruned,
    restart_statistics,
)
from analysis.tables import fmt, mean_std, text_table
from workers.metrics.registry import TRAINER_COLUMNS, headline_columns
from workers.store.layout import read_study_text
from workers.store.plan import read_plan

# Per-group table: orthogonality, then every disentanglement score, losses, the posterior's state.
TABLE_METRICS = (*headline_columns("orthogonality"), OD_NORM, *headline_columns("disentanglement"), "recon", "kl",
                 "loss", *headline_columns("posterior"), *TRAINER_COLUMNS)


def study_statistics(con: duckdb.DuckDBPyConnection, *, metric: str = "mig", split: SplitMethod = "topk",
                     k: int = 4, threshold: float | None = None, epoch: int | None = None,
                     exclude_overpruned: bool = True, n_boot: int = 1000,
                     runs: pd.DataFrame | None = None) -> dict[str, Any]:
    """Per-group table, entangled-vs-disentangled statistics and correlations over the study's restarts.

    runs: the `restarts(con, epoch)` frame when the caller already has it.
    """
    runs = restarts(con, epoch) if runs is None else runs
    if runs.empty:
        return {"n_restarts": 0, "groups": pd.DataFrame(), "restart_statistics": [], "correlations": pd.DataFrame(),
                "udr_correlations": pd.DataFrame(), "embedding": pd.DataFrame()}
    runs = with_normalised_od(runs, by=("study", "dataset", "epoch"))
    nf = n_factors(runs)
    by = GROUP_BY
    stats = restart_statistics(runs, metric=metric, method=split, k=k, threshold=threshold,
                               exclude_overpruned=exclude_overpruned, n_factors=nf, by=by)
    kept = runs[~overpruned(runs["active_units"].to_numpy(float), nf)] if exclude_overpruned else runs
    # UDR is the label-free alternative to picking restarts by MIG: how well does it rank them?
    udr = (correlation_table(kept, x="udr_spearman", metrics=("mig", "dto"), by=by, n_boot=n_boot)
           if "udr_spearman" in kept and kept["udr_spearman"].notna().any() else pd.DataFrame())
    return {
        "n_restarts": len(runs), "metric": metric, "split": split, "k": k, "threshold": threshold, "epoch": epoch,
        "exclude_overpruned": exclude_overpruned,
        "groups": group_table(runs, metrics_present(runs, TABLE_METRICS), by=by),
        "restart_statistics": stats,
        "correlations": correlation_table(kept, by=by, n_boot=n_boot),
        "udr_correlations": udr,
        "embedding": embedding_table(runs, by=by, metric=metric),
    }


# ------------------------------------------------------------------------------------------------ tables

def group_rows(groups: pd.DataFrame) -> tuple[list[str], list[list[Any]]]:
    """The Table 3.3-style table: one row per group, mean ± std of every recorded metric."""
    metrics = [c[:-5] for c in groups.columns if c.endswith("_mean")]
    headers = ["group", "n"] + metrics
    rows = [[r["group"], int(r["n"])] + [mean_std(r[f"{m}_mean"], r[f"{m}_std"]) for m in metrics]
            for _, r in groups.iterrows()]
    return headers, rows


def split_rows(stats: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Entangled vs disentangled: one row per group."""
    headers = ["group", "n", "over-pruned", "used", "dip p", "BC", "dis/ent", "fraction dis. [95% CI]",
               "DtO dis vs ent", "δ DtO", "p DtO", "δ recon", "δ KL", "δ active", "note"]
    rows = []
    for s in stats:
        c = s.get("compare", {})
        frac = (f"{s['fraction_disentangled']:.2f} [{s['fraction_lo']:.2f}, {s['fraction_hi']:.2f}]"
                if "fraction_disentangled" in s else "—")
        dto = c.get("dto", {})
        rows.append([
            s["group"], s["n"], s["n_overpruned"], s["n_used"], s["bimodality"]["dip_p"], s["bimodality"]["bc"],
            f"{s.get('n_disentangled', '—')}/{s.get('n_entangled', '—')}", frac,
            f"{fmt(dto.get('mean_x'), 3)} vs {fmt(dto.get('mean_y'), 3)}" if dto else "—",
            dto.get("cliffs_delta"), dto.get("p"),
            c.get("recon", {}).get("cliffs_delta"), c.get("kl", {}).get("cliffs_delta"),
            c.get("active_units", {}).get("cliffs_delta"), s.get("error", s.get("note", "")),
        ])
    return headers, rows


def correlation_rows(corr: pd.DataFrame) -> tuple[list[str], list[list[Any]]]:
    headers = ["group", "metric", "n", "Spearman ρ [95% CI]", "p", "Pearson r [95% CI]", "p", "Kendall τ [95% CI]",
               "p"]

    def ci(r: pd.Series, m: str) -> str:
        return f"{fmt(r[m], 3)} [{fmt(r[f'{m}_lo'], 3)}, {fmt(r[f'{m}_hi'], 3)}]"

    rows = [[r["group"], r["metric"], int(r["n"]), ci(r, "spearman"), r["spearman_p"], ci(r, "pearson"),
             r["pearson_p"], ci(r, "kendall"), r["kendall_p"]] for _, r in corr.iterrows()]
    return headers, rows


def embedding_rows(emb: pd.DataFrame, metric: str = "mig") -> tuple[list[str], list[list[Any]]]:
    """Aligned / linearly mixed / polar restarts: one row per group (with the mean `metric` of each set)."""
    headers = ["group", "n", "aligned", "mixed", "polar", "not polar (old)", "not evaluated",
               f"{metric} aligned / mixed / polar", "mean axis purity", "mean cartesian residual",
               "mean polar residual"]
    rows = [[r["group"], int(r["n"]), int(r["n_aligned"]), int(r["n_mixed"]), int(r["n_polar"]),
             int(r["n_not_polar"]), int(r["n_unknown"]),
             " / ".join(fmt(r.get(f"{metric}_{name}_mean"), 3) for name in ("aligned", "mixed", "polar")),
             r["embedding_axis_purity_mean"], r["embedding_residual_cartesian_mean"],
             r["embedding_residual_polar_mean"]]
            for _, r in emb.iterrows()]
    return headers, rows


EMBEDDING_NOTE = ("A restart is polar when the embedding metric found at least one factor pair embedded as the radius "
                  "and angle of two latents, linearly mixed when (no pair is polar and) some pair's latents move "
                  "with both factors, aligned when every pair has one factor per latent axis (axis purity >= 0.9; "
                  "workers/metrics/embedding.py states the rule and its calibration). Rows evaluated before the "
                  "three labels know only polar vs not polar. `orthosweep stats --split aligned|mixed|polar` "
                  "compares aligned vs the rest, aligned vs linearly mixed, and not polar vs polar.")


def _describe_choice(st: dict[str, Any]) -> str:
    how = {"topk": f"the {st['k']} best vs the {st['k']} worst restarts", "threshold": f"threshold {st['threshold']}",
           "mixture": "a two-component Gaussian mixture",
           "aligned": "embedding: aligned restarts ('dis') vs linearly mixed or polar ones ('ent')",
           "mixed": "embedding: aligned restarts ('dis') vs linearly mixed ones ('ent'), polar ones left out",
           "polar": "embedding: restarts without a polar pair ('dis') vs polar ones ('ent')"}[st["split"]]
    at = "each restart's last checkpoint" if st["epoch"] is None else f"epoch {st['epoch']}"
    pruned = "excluded" if st["exclude_overpruned"] else "included"
    split = (f"split by {st['metric']} with {how}" if st["split"] not in EMBEDDING_SPLITS else
             f"split by the {how}, {st['metric']} described and compared")
    return (f"{st['n_restarts']} restarts at {at}; {split}; over-pruned restarts "
            f"(fewer active units than factors) {pruned}. δ = Cliff's delta (disentangled vs entangled), "
            "p = two-sided Mann–Whitney U; BC > 0.555 and a small dip-test p suggest two modes.")


def stats_text(con: duckdb.DuckDBPyConnection, *, as_json: bool = False, **kw: Any) -> str:
    """`orthosweep stats` output: the three tables as text, or everything as JSON."""
    st = study_statistics(con, **kw)
    if as_json:
        out = {**{k: v for k, v in st.items() if not isinstance(v, (pd.DataFrame, list))},
               "groups": st["groups"].to_dict("records"), "restart_statistics": st["restart_statistics"],
               "correlations": st["correlations"].to_dict("records"),
               "udr_correlations": st["udr_correlations"].to_dict("records"),
               "embedding": st["embedding"].to_dict("records")}
        return json.dumps(_json_safe(out), indent=1)
    if st["n_restarts"] == 0:
        return "no restarts with status ok yet"
    parts = [_describe_choice(st), "", "Per group (mean ± std over restarts)", text_table(*group_rows(st["groups"]))]
    if f"{OD_NORM}_mean" in st["groups"]:
        parts.append(OD_NOTE)
    parts += ["", "Entangled vs disentangled", text_table(*split_rows(st["restart_statistics"]))]
    if len(st["embedding"]):
        parts += ["", "Aligned, linearly mixed and polar restarts (embedding metric, thesis §4.3.6)",
                  text_table(*embedding_rows(st["embedding"], st["metric"]))]
    parts += ["", "Correlations of DtO with each disentanglement metric (bootstrap 95% CI)",
              text_table(*correlation_rows(st["correlations"])) if len(st["correlations"]) else "(none recorded)"]
    if len(st["udr_correlations"]):
        parts += ["", "Rank correlation of UDR (Spearman variant) with MIG and with DtO across restarts",
                  text_table(*correlation_rows(st["udr_correlations"]))]
    return "\n".join(parts)


def _json_safe(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_safe(v) for v in o]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return None if math.isnan(o) else float(o)
    if isinstance(o, np.ndarray):
        return _json_safe(o.tolist())
    return o


# ------------------------------------------------------------------------------------------------ HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.6em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{font-size:.85em;color:#555}
.note{color:#555;font-size:.9em}
"""


def html_table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def progress_rows(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[list[Any]]]:
    """Restarts, finished, diverged and failed per configuration (labelled by analysis.groups)."""
    rows = con.execute(
        "SELECT study, config_key, count(*) AS restarts, count(*) FILTER (WHERE epoch >= epochs) AS finished, "
        "count(*) FILTER (WHERE status = 'diverged') AS diverged, count(*) FILTER (WHERE status = 'failed') AS failed, "
        "sum(n_checkpoints) AS checkpoint_rows, max(written_at)::VARCHAR AS last_write "
        "FROM runs GROUP BY study, config_key").fetchall()
    names = label_map(configurations(con))
    table = sorted([[names.get((r[0], r[1]), r[1]), *r[2:]] for r in rows], key=lambda r: str(r[0]))
    return ["group", "restarts", "finished", "diverged", "failed", "checkpoint rows", "last write"], table


def expected_restarts(study_uri: str) -> int | None:
    """Restarts the study defines, from the plan `submit` stored beside study.yaml (None without one)."""
    plan = read_plan(study_uri)
    return None if plan is None else len(plan.restarts)


MAX_LISTED = 50  # polar restarts listed by name in the report


def embedding_section(runs: pd.DataFrame, emb: pd.DataFrame, metric: str = "mig") -> list[str]:
    """HTML of the embedding section: counts per label and group, the polar restarts (at most MAX_LISTED) and
    the embedding of the restarts the traversal figure shows; [] when no restart has the embedding metric."""
    if not len(emb):
        return []
    e = html.escape
    labels = embedding_labels(runs)
    polar = runs[labels == "polar"].sort_values(["group", POLAR_COLUMN], ascending=[True, False], kind="stable")
    cols = [c for c in ("polar_pairs", POLAR_COLUMN, "embedding_residual_cartesian", "embedding_residual_polar",
                        "mig") if c in polar]
    rows = [[r["group"], r["run_key"], r["seed"], *(r[c] for c in cols)] for _, r in polar.head(MAX_LISTED).iterrows()]
    out = ["<h2>Aligned, linearly mixed and polar restarts</h2>", f"<p class='note'>{e(EMBEDDING_NOTE)}</p>",
           html_table(*embedding_rows(emb, metric)), f"<h3>Polar restarts ({len(polar)})</h3>"]
    out.append(html_table(["group", "restart", "seed", *cols], rows) if rows else "<p>none</p>")
    if len(polar) > MAX_LISTED:
        out.append(f"<p class='note'>… and {len(polar) - MAX_LISTED} more (orthosweep sql: "
                   f"{POLAR_COLUMN} > 0)</p>")
    out.append(f"<p class='note'>{e(_traversal_note(runs, labels))}</p>")
    return out


def _traversal_note(runs: pd.DataFrame, labels: pd.Series) -> str:
    """Which embedding the best and worst restart of the traversal figure have (its choice of restarts)."""
    from analysis.traversals import pick_best_worst, traversal_metric

    metric = traversal_metric(runs)  # the figures' choice
    picked = pick_best_worst(runs, metric) if metric in runs else None
    if picked is None:
        return "No traversal figure of a best and worst restart (too few restarts with the metric)."
    best, worst = (f"{r['run_key']} ({labels.get(r.name) or 'embedding not recorded'})" for r in picked)
    return (f"The figures traversals_best_worst and traversals_2d_best_worst (Figures) show latent traversals of the "
            f"best restart {best} and the worst restart {worst} by {metric}: one latent at a time, and over the two "
            "latents with the largest KL together (straight iso-lines crossing along the axes: aligned; straight but "
            "oblique: linearly mixed; rays and rings: polar).")


def restart_views_section(con: duckdb.DuckDBPyConnection, runs: pd.DataFrame, study_uri: str) -> list[str]:
    """HTML of the best and the worst restart (the traversal figures' pick) drawn as `orthosweep show` draws
    any restart, each under an anchor `restart-<run_key>` and with the command that redraws it; [] when
    there is no such pair."""
    from analysis.show import restart_views
    from analysis.traversals import pick_best_worst, traversal_metric

    metric = traversal_metric(runs)
    picked = pick_best_worst(runs, metric) if metric in runs else None
    if picked is None:
        return []
    e = html.escape
    keys = [str(r["run_key"]) for r in picked]
    out = ["<h2>The best and worst restart, opened up</h2>",
           "<p class='note'>" + " · ".join(f"<a href='#restart-{e(k)}'>{side}: {e(k)}</a>"
                                           for side, k in zip(("best", "worst"), keys, strict=True))
           + f" (by {e(metric)}, in the group where it spreads most). Any other restart: "
           "<code>orthosweep show STUDY RUN_KEY</code>.</p>"]
    for side, row in zip(("best", "worst"), picked, strict=True):
        key, epoch = str(row["run_key"]), int(row["epoch"])
        out.append(f"<h3 id='restart-{e(key)}'>{side} by {e(metric)}: {e(key)} ({e(metric)} = {fmt(row[metric])}, "
                   f"epoch {epoch})</h3><p class='note'><code>orthosweep show {e(study_uri)} {e(key)} --epoch {epoch}"
                   "</code></p>")
        try:

            views = restart_views(open_restart(con, study_uri, key, epoch))
        except Exception as ex:  # noqa: BLE001 - a restart without saved weights must not hide the report
            out.append(f"<p>not drawn: {e(type(ex).__name__)}: {e(str(ex))}</p>")
            continue
        for name, data in views.items():
            mime = "image/gif" if name.endswith(".gif") else "image/png"
            b64 = base64.b64encode(data).decode("ascii")
            out.append(f"<figure><img class='figure' alt='{e(name)}' src='data:{mime};base64,{b64}'>"
                       f"<figcaption>{e(key)}: {e(name)}</figcaption></figure>")
    return out


def build_report(con: duckdb.DuckDBPyConnection, study_uri: str, *, n_boot: int = 1000,
                 figures: dict[str, bytes] | None = None) -> str:
    """The whole report as one HTML string (no external resources, no scripts); figures with nothing to
    draw are left out and named with the reason."""
    from analysis.figures import draw_figures

    spec = read_study_text(study_uri)
    runs = restarts(con)
    st = study_statistics(con, n_boot=n_boot, runs=runs)
    figs, left_out = draw_figures(con, study_uri, runs) if figures is None else (figures, {})
    total = expected_restarts(study_uri)
    seen = st["n_restarts"]
    of_total = f" of {total} defined by the study file" if total else ""
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>orthosweep report: {e(study_uri)}"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>orthosweep report: {e(study_uri)}</h1>",
             f"<p class='note'>generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC} from the Parquet store alone</p>",
             "<h2>Progress</h2>",
             f"<p>{seen} restarts with status ok{of_total}</p>",
             html_table(*progress_rows(con)),
             "<h2>Per group (mean ± std over restarts, last checkpoint)</h2>"]
    if seen:
        parts += [html_table(*group_rows(st["groups"])),
                  *([f"<p class='note'>{e(OD_NOTE)}</p>"] if f"{OD_NORM}_mean" in st["groups"] else []),
                  "<h2>Entangled vs disentangled restarts</h2>", f"<p class='note'>{e(_describe_choice(st))}</p>",
                  html_table(*split_rows(st["restart_statistics"])),
                  *embedding_section(runs, st["embedding"], st["metric"]),
                  "<h2>Correlations of DtO with disentanglement metrics</h2>",
                  html_table(*correlation_rows(st["correlations"])) if len(st["correlations"])
                  else "<p>no disentanglement metric recorded</p>"]
    else:
        parts.append("<p>no restarts with status ok yet</p>")
    parts.append("<h2>Figures</h2>")
    for name, png in figs.items():
        b64 = base64.b64encode(png).decode("ascii")
        parts.append(f"<figure><img class='figure' alt='{e(name)}' src='data:image/png;base64,{b64}'>"
                     f"<figcaption>{e(name)}</figcaption></figure>")
    if left_out:
        parts.append("<p class='note'>Left out (nothing to draw): " + "; ".join(
            f"{e(name)}: {e(why)}" for name, why in left_out.items()) + "</p>")
    parts += restart_views_section(con, runs, study_uri)
    parts.append(f"<h2>Study spec</h2><pre>{e(spec) if spec else 'study.yaml not found'}</pre></body></html>")
    return "\n".join(parts)
