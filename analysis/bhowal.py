"""Bhowal, Soni & Rambhatla (ICML 2024) in `compare` and `stats`: the normalised OD-Score, the paper's
Tables 1, 2, 4, 5 and 6 beside the measured ones, and its claims checked on the same restarts.

The store keeps the OD-Score's three distances un-normalised per restart (`od_u`, `od_sigma`, `od_v`,
workers/metrics/od_score.py). The paper divides each by its maximum over the models it compares, then
averages the three (§4.4); `normalised_od_score` does that over the restarts of the rows given, within
each dataset and checkpoint epoch, so the maximum runs over every group (model, hyperparameters) of the
study on that dataset. The result lies in [0, 1] and depends on which restarts are compared: a study with
other models gives other values, as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.published import DERIVED_COLUMNS, PUBLISHED, Published

STUDY = "bhowal2024"
OD_NORM = "od_score_norm"
OD_PARTS = DERIVED_COLUMNS[OD_NORM]  # od_u, od_sigma, od_v
OD_NOTE = (f"{OD_NORM}: the OD-Score as Bhowal et al. normalise it: each of od_u, od_sigma, od_v divided by its "
           "maximum over this study's restarts on the same dataset (and checkpoint), then the mean of the three; "
           "in [0, 1], lower = closer to orthogonal.")
LOCAL_COLUMNS = ("local_decoder_linear", "local_decoder_nonlinear", "local_decoder_stoch_jacobian",
                 "local_decoder_stoch_nonlinear")
COLUMNS = ("mig", "mig_sup", "dto", *OD_PARTS, "od_score", *LOCAL_COLUMNS)
MODELS = ("beta_tcvae", "beta_vae", "vae")  # the paper's column order


def normalised_od_score(df: pd.DataFrame, by: Sequence[str] = ("dataset", "epoch")) -> pd.Series:
    """Per row, mean over the three distances of distance / max(distance over the rows sharing `by`).

    df: one row per restart (and checkpoint) with od_u, od_sigma, od_v (NaN where not computed). NaN where
    a distance is missing or its maximum is 0 (nothing to normalise by).
    """
    by = [c for c in by if c in df]
    parts = []
    for c in OD_PARTS:
        v = df[c].astype(float) if c in df else pd.Series(np.nan, index=df.index)
        top = v.groupby([df[b] for b in by]).transform("max") if by else pd.Series(v.max(), index=df.index)
        parts.append(v / top.where(top > 0))
    return (sum(parts) / len(parts)).rename(OD_NORM)


def with_normalised_od(df: pd.DataFrame, by: Sequence[str] = ("dataset", "epoch")) -> pd.DataFrame:
    """df with the `od_score_norm` column added when it has the OD-Score's distances, unchanged otherwise."""
    if not all(c in df for c in OD_PARTS) or df["od_u"].isna().all():
        return df
    return df.assign(**{OD_NORM: normalised_od_score(df, by)})


# ------------------------------------------------------------------------------------------------ compare

def load_rows(study_dir: str) -> pd.DataFrame:
    """Deduplicated ok checkpoint rows with the columns the tables and claims use."""
    from workers.store.views import connect

    con = connect(study_dir)
    have = {r[0] for r in con.execute("DESCRIBE checkpoints").fetchall()}
    cols = ", ".join(c if c in have else f"NULL::DOUBLE AS {c}" for c in COLUMNS)
    return con.execute(f"SELECT study, dataset, model, config_key, seed, epoch, epochs, {cols} "
                       "FROM checkpoints WHERE status = 'ok'").df()


def _cell(values: pd.Series) -> tuple[int, float, float]:
    v = values.dropna().astype(float)
    return len(v), (float(v.mean()) if len(v) else math.nan), (float(v.std(ddof=1)) if len(v) > 1 else math.nan)


def _fmt(mean: float, std: float, digits: int) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _verdict(n: int, mean: float, std: float, p: Published) -> str:
    if n == 0:
        return "not measured"
    if math.isnan(p.std):
        return "no spread published"
    return "agrees" if abs(mean - p.mean) <= p.std + (0.0 if math.isnan(std) else std) + 1e-9 else "differs"


def tables_markdown(final: pd.DataFrame, published: list[Published]) -> str:
    """One table per published source and metric, laid out as the paper's (a row per dataset, a column per
    model), each cell 'ours / paper (verdict, n)'; ours = mean ± std over the restarts' final checkpoints."""
    out = []
    blocks: dict[tuple[str, str], list[Published]] = {}
    for p in published:
        blocks.setdefault((p.source, p.metric), []).append(p)
    for (source, metric), rows in blocks.items():
        digits = 4 if metric.startswith(("od_", "local_")) else 2
        out += [f"**{source}** — `{metric}` (ours / paper)", "", "| dataset | " + " | ".join(MODELS) + " |",
                "|---|" + "---|" * len(MODELS)]
        for label in dict.fromkeys(p.label for p in rows):
            cells = []
            for model in MODELS:
                p = next((r for r in rows if (r.label, r.model) == (label, model)), None)
                if p is None:
                    cells.append("—")
                    continue
                sel = final[(final["dataset"] == p.dataset) & (final["model"] == model)]
                n, mean, std = _cell(sel[metric]) if metric in sel else (0, math.nan, math.nan)
                cells.append(f"{_fmt(mean, std, digits)} / {_fmt(p.mean, p.std, digits)} ({_verdict(n, mean, std, p)}, "
                             f"n = {n})")
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def _spearman(x: pd.Series, y: pd.Series) -> tuple[float, float, int]:
    from scipy.stats import spearmanr

    ok = x.notna() & y.notna()
    n = int(ok.sum())
    if n < 4 or x[ok].nunique() < 2 or y[ok].nunique() < 2:
        return math.nan, math.nan, n
    rho, p = spearmanr(x[ok], y[ok])
    return float(rho), float(p), n


def _negative(rho: float, p: float, n: int) -> str:
    if n == 0:
        return "not measured (no restart has both values)"
    if math.isnan(rho):
        return "inconclusive (too few restarts, or one side constant)"
    if rho >= 0:
        return "fails"
    return "holds" if p < 0.05 else "inconclusive (not significant)"


def claims(df: pd.DataFrame) -> list[tuple[str, str]]:
    """The paper's findings on this study's rows: (claim, verdict with the numbers)."""
    out: list[tuple[str, str]] = []
    final = df[df["epoch"] == df["epochs"]]
    for ds in sorted(final["dataset"].unique()):
        sub = final[final["dataset"] == ds]
        for m in ("mig", "mig_sup"):
            rho, p, n = _spearman(sub[OD_NORM] if OD_NORM in sub else pd.Series(dtype=float), sub[m])
            out.append((f"{ds}: the OD-Score falls as {m.upper().replace('_', '-')} rises across restarts of all "
                        "models (Fig. 4)", f"{_negative(rho, p, n)}: Spearman ρ = {rho:.2f} (p = {p:.3g}, n = {n})"))
        if OD_NORM in sub:
            means = sub.groupby("model")[[OD_NORM, "mig"]].mean()
            out.append((f"{ds}: model means, OD-Score vs MIG (Tables 4 and 6)",
                        "measured: " + ", ".join(f"{k} OD {r[OD_NORM]:.3f} / MIG {r['mig']:.2f}"
                                                 for k, r in means.iterrows())))
        lin, nl = sub["local_decoder_linear"].mean(), sub["local_decoder_nonlinear"].mean()
        jac, snl = sub["local_decoder_stoch_jacobian"].mean(), sub["local_decoder_stoch_nonlinear"].mean()
        if math.isnan(lin):
            out.append((f"{ds}: the one-nonlinearity local decoder fits better than the linear one (Tables 1-2)",
                        "not measured: `orthosweep evaluate STUDY --metrics local_decoder`"))
        else:
            out.append((f"{ds}: the one-nonlinearity local decoder fits Dec(μ+ε) − Dec(μ) better than the linear "
                        "one (Table 1)",
                        f"{'holds' if nl < lin else 'fails'}: unexplained share {nl:.4f} vs {lin:.4f}"))
            out.append((f"{ds}: it also estimates the stochastic reconstruction loss better than the Jacobian "
                        "(Table 2)", f"{'holds' if snl < jac else 'fails'}: relative error {snl:.4f} vs {jac:.4f}"))
    # DtO and the OD-Score: do the two orthogonality measures rank restarts alike? (per checkpoint epoch, the
    # OD-Score's normalisation being per epoch)
    for (ds, epoch), sub in df.groupby(["dataset", "epoch"], sort=True):
        if OD_NORM in sub and sub["dto"].notna().any():
            rho, p, n = _spearman(sub["dto"], sub[OD_NORM])
            out.append((f"{ds} epoch {epoch}: DtO and the OD-Score rank restarts alike",
                        f"measured: Spearman ρ = {rho:.2f} (p = {p:.3g}, n = {n})"))
    return out


def study_markdown(study_dir: str, study: str) -> str:
    """The `compare` section of a Bhowal study: the published tables beside ours, then the claims."""
    df = with_normalised_od(load_rows(study_dir))
    final = df[df["epoch"] == df["epochs"]]
    parts = [f"### `{study}`", "", OD_NOTE, "",
             "Tables 1 and 2 of the paper give single numbers on a scale it does not define; ours are the "
             "unexplained share of Dec(μ+ε) − Dec(μ) (Table 1) and the relative error of the estimated stochastic "
             "reconstruction loss (Table 2), workers/metrics/local_decoder.py: compare their order, not their values.",
             "", tables_markdown(final, PUBLISHED[STUDY]),
             "Verdict: *agrees* when the 1-σ intervals overlap (|Δ| ≤ σ_ours + σ_paper), otherwise *differs*; "
             "ours at each restart's final checkpoint. 3DFaces and MPI3D-complex are not in this study.", ""]
    cl = claims(df)
    if cl:
        parts += ["| claim | on this data |", "|---|---|", *[f"| {c} | {r} |" for c, r in cl], ""]
    return "\n".join(parts)
