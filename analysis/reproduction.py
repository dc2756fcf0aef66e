"""Measured-vs-published tables for the paper studies, generated from the Parquet store alone.

`orthosweep compare STUDY_DIR` prints a Markdown section: for each published row (analysis.published) and each
configuration of the study it describes (groups are configurations, analysis.groups), our mean ± std over
restarts beside the paper's, with a one-line verdict, followed by the paper's qualitative claims checked on the
same data. docs/reproduction.md is assembled from these outputs.

Which published tables and claims apply is decided by what the study holds (`paper_studies`): a study named
after a paper study (or a declared variant, `<name>_cpu`) gets that study's; any other study gets those whose
data it holds: orig./mod./noise variants (dataset options `perturbation:` / `noise:`) the perturbed-data study
(Tables 4.2–4.5), Table 3.3's datasets and models the restart study of Rolínek et al., dSprites / Shapes3D
with an AE beside VAEs Table 4.2's original column, Synth. Lin. at several ratios Table 3.4.

Verdict rule (stated in every table): "agrees" when the two 1-σ intervals overlap (|Δ| ≤ σ_ours + σ_paper;
for Table 3.2, which gives no spread, |Δ| ≤ 3 percentage points); otherwise "differs".

Claims on the perturbed data are paired: restarts are matched by seed between a configuration on the original
data and the same configuration on a variant (same seeds in every variant), collapsed restarts (fewer active
units than factors) are left out with their pairs and counted, and each claim is a one-sided Wilcoxon
signed-rank test on the per-seed differences (`analysis.stats.paired_test`, sign-test p beside it); a claim
holds only when p < 0.05 for every model it names. The other papers' claims compare means.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import bhowal
from analysis.frames import n_factors
from analysis.groups import FIELD_PREFIX, attach_groups, configurations, field_text, relabel
from analysis.published import PUBLISHED, VARIANTS, Published
from workers.data.perturbation_folder import FolderError, read_meta
from workers.store.views import connect

METRICS = ("dto", "ds", "mig", "dci_disentanglement", "factorvae_eval", "sap", "polarized_fraction")


def load_rows(study_dir: str) -> pd.DataFrame:
    """Deduplicated checkpoint rows (status ok) with the selectors the published tables use, and each row's
    configuration: `group` and the `cfg.<name>` fields of analysis.groups."""

    con = connect(study_dir)
    df = con.execute(
        f"""SELECT study, dataset, model, config_key, run_key, seed, epoch, epochs, latent_dim, beta, active_units,
                  CAST(json_extract(config, '$.dataset_options.ratio') AS DOUBLE) AS ratio,
                  CASE WHEN json_extract(config, '$.dataset_options.perturbation') IS NOT NULL
                        AND json_extract(config, '$.dataset_options.perturbation') <> 'null'::JSON THEN 'mod'
                       WHEN json_extract(config, '$.dataset_options.noise') IS NOT NULL
                        AND json_extract(config, '$.dataset_options.noise') <> 'null'::JSON THEN 'noise'
                       ELSE 'orig' END AS variant,
                  {", ".join(METRICS)}
           FROM checkpoints WHERE status = 'ok' ORDER BY study, config_key, seed, epoch"""
    ).df()
    return attach_groups(df, configurations(con))


VARIANT_FIELDS = ("perturbation", "noise")  # the dataset options that make a configuration a data variant
BASE_OMITS = (*VARIANT_FIELDS, "dataset")  # a configuration's row label in the per-dataset tables and claims


@dataclass
class Comparison:
    row: Published
    n: int
    mean: float
    std: float
    group: str = "—"  # the configuration measured (analysis.groups label); "—" when none matches
    base: str = "—"  # the same without the dataset and the data-variant fields (a row of Tables 4.2–4.5)

    @property
    def verdict(self) -> str:
        if self.n == 0 or math.isnan(self.mean):
            return "not measured"
        diff = abs(self.mean - self.row.mean)
        if math.isnan(self.row.std):
            return "agrees" if diff <= 3.0 else "differs"
        return "agrees" if diff <= self.row.std + (0.0 if math.isnan(self.std) else self.std) + 1e-9 else "differs"


def select(df: pd.DataFrame, p: Published) -> pd.Series:
    """The metric values (scaled like the paper) of the restarts a published row describes."""
    sub = selected_rows(df, p)
    return sub[p.metric].astype(float) * p.scale


def selected_rows(df: pd.DataFrame, p: Published) -> pd.DataFrame:
    """The rows (with the metric recorded) of the restarts a published row describes."""
    m = df["dataset"] == p.dataset
    if p.model is not None:
        m &= df["model"] == p.model
    m &= (df["epoch"] == 0) if p.epoch == "0" else (df["epoch"] == df["epochs"])
    if "variant" in df:
        m &= df["variant"] == p.variant
    for k, v in p.where.items():
        m &= np.isclose(df[k].astype(float), v)
    return df.loc[m & df[p.metric].notna()]


PAPER_STUDIES = ("rolinek2019_table3", "rolinek2019_polarized", "rolinek2019_degenerate", "rolinek2019_restarts",
                 "rolinek2019_beta_search", "zietlow2021_restarts", "zietlow2021_perturbed", bhowal.STUDY)
T33_DATASETS, T33_MODELS = ("dsprites", "synth_lin", "synth_nonlin"), ("beta_vae", "vae", "ae", "beta_vae_sigma")
T4_DATASETS = ("dsprites", "shapes3d")


def paper_study(study: str) -> str:
    """The paper study a study reproduces by name: its name, or the name a declared variant (`<name>_cpu`, ...)
    extends."""
    return next((p for p in PAPER_STUDIES if study == p or study.startswith(p + "_")), study)


def paper_studies(df: pd.DataFrame, study: str) -> list[str]:
    """The paper studies whose tables and claims apply: the one the name declares, else those whose data the
    study holds (module docstring)."""
    named = paper_study(study)
    if named in PAPER_STUDIES:
        return [named]
    out: list[str] = []
    if df.empty:
        return out
    if "variant" in df and df["variant"].isin(("mod", "noise")).any():
        out.append("zietlow2021_perturbed")
    orig = df[df["variant"] == "orig"] if "variant" in df else df
    t33 = orig[orig["dataset"].isin(T33_DATASETS) & orig["model"].isin(T33_MODELS)]
    if "beta_vae" in set(t33["model"]) and t33["model"].nunique() >= 2:
        out.append("rolinek2019_table3")
    t4 = orig[orig["dataset"].isin(T4_DATASETS)]
    if "zietlow2021_perturbed" not in out and "ae" in set(t4["model"]) and t4["model"].nunique() >= 2:
        out.append("zietlow2021_restarts")
    lin = orig[(orig["dataset"] == "synth_lin") & (orig["model"] == "beta_vae")]
    if "ratio" in lin and lin["ratio"].nunique() >= 2:
        out.append("rolinek2019_degenerate")
    return out


def compare(df: pd.DataFrame, study: str) -> list[Comparison]:
    """One Comparison per (published row, configuration it describes) of the applicable paper studies; a
    published row that no configuration matches is listed once, not measured. Rows of datasets the study
    does not hold are left out (unless the study is named after the paper study)."""
    named = paper_study(study) in PAPER_STUDIES
    held = set(df["dataset"]) if len(df) else set()
    labels = _labels(df)
    out = []
    for base in paper_studies(df, study):
        for p in PUBLISHED.get(base, []):
            if not named and p.dataset not in held:
                continue
            rows = selected_rows(df, p)
            if rows.empty:
                out.append(Comparison(p, 0, float("nan"), float("nan")))
                continue
            for key, sub in rows.groupby(["study", "config_key"], sort=False):
                vals = sub[p.metric].astype(float) * p.scale
                group, base_label = labels.get(key, ("—", "—"))
                out.append(Comparison(p, len(vals), float(vals.mean()),
                                      float(vals.std(ddof=1)) if len(vals) > 1 else float("nan"), group, base_label))
    return out


def _labels(df: pd.DataFrame) -> dict[tuple[str, str], tuple[str, str]]:
    """(study, config_key) -> (group label, label without the data-variant fields)."""
    if df.empty or "group" not in df:
        return {}
    configs = df.drop_duplicates(["study", "config_key"])
    base = relabel(configs, omit=BASE_OMITS)
    return {(r.study, r.config_key): (r.group, b) for r, b in zip(configs.itertuples(), base, strict=True)}


def _fmt(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def comparison_markdown(rows: list[Comparison]) -> str:
    lines = ["| source | dataset | model | configuration | metric | checkpoint | n | ours | paper | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in rows:
        p = c.row
        model = p.label if p.model is None else p.model + (f" ({p.label})" if p.label else "")
        lines.append(f"| {p.source} | {p.dataset} | {model} | {c.group} | {p.metric} | "
                     f"{'epoch 0' if p.epoch == '0' else 'final'} | {c.n} | {_fmt(c.mean, c.std)} | "
                     f"{_fmt(p.mean, p.std)} | {c.verdict} |")
    return "\n".join(lines)


def variant_markdown(rows: list[Comparison]) -> str:
    """Tables 4.2–4.5 as the thesis prints them: per (table, dataset) one row per configuration on the original
    data (a model, or a model with the other fields that differ) with the original, modified and noisy data
    side by side, ours next to the paper's, and the verdict per cell; a variant measured in several
    configurations (two perturbations, two noise levels) lists each, named by its variant field."""
    cells: dict[tuple[str, str], dict[str, dict[str, list[Comparison]]]] = {}
    for c in rows:
        p = c.row
        row = c.base if c.n else str(p.model)
        cells.setdefault((p.source, p.dataset), {}).setdefault(row, {}).setdefault(p.variant, []).append(c)
    out = []
    for (source, ds), models in cells.items():
        metric = next(iter(next(iter(models.values())).values()))[0].row.metric
        out += [f"**{source}, {ds}** ({metric}; ours / paper, verdict)", "",
                "| configuration | orig. | mod. | noise |", "|---|---|---|---|"]
        for model, by_variant in models.items():
            line = [model]
            for v in VARIANTS:
                cs = by_variant.get(v, [])
                line.append("; ".join((_variant_name(c) + _cell(c)) for c in cs) or "—")
            out.append("| " + " | ".join(line) + " |")
        out.append("")
    return "\n".join(out)


def _cell(c: Comparison) -> str:
    return f"{_fmt(c.mean, c.std)} / {_fmt(c.row.mean, c.row.std)} ({c.verdict}, n = {c.n})"


def _variant_name(c: Comparison) -> str:
    """'perturbation=lin_e0.1: ' for a data variant's configuration (empty on the original data)."""
    fields = [part for part in c.group.split(" · ") if part.split("=")[0] in VARIANT_FIELDS
              and not part.endswith("=none")]
    return f"{', '.join(fields)}: " if c.row.variant != "orig" and fields else ""


def _variant_configs(fin: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration of the final rows: study, config_key, dataset, model, variant, `vlabel`
    (the variant's fields, e.g. 'perturbation=lin_e0.1'; '' on the original data), `base` (the configuration
    without the variant fields: equal for a configuration and its variants) and `base_label`."""
    configs = fin.drop_duplicates(["study", "config_key"]).copy()
    fields = [c for c in configs.columns if c.startswith(FIELD_PREFIX)]
    same = [c for c in fields if c[len(FIELD_PREFIX):] not in VARIANT_FIELDS]
    varying = [c for c in fields if c[len(FIELD_PREFIX):] in VARIANT_FIELDS]
    configs["base"] = [tuple(field_text(v) for v in r) for r in configs[same].itertuples(index=False)]
    configs["vlabel"] = [", ".join(f"{c[len(FIELD_PREFIX):]}={field_text(v)}" for c, v in zip(varying, r, strict=True)
                                   if field_text(v) != "none") for r in configs[varying].itertuples(index=False)]
    configs["base_label"] = relabel(configs, omit=BASE_OMITS)
    path = FIELD_PREFIX + "perturbation"
    configs["folder"] = configs[path] if path in configs else None
    return configs[["study", "config_key", "dataset", "model", "variant", "vlabel", "base", "base_label", "folder"]]


def perturbation_epsilon(folder: str | None) -> float | None:
    """ε of a `perturbation:` folder from its perturbation.yaml (resolved like the option: relative to the
    working directory); None when it cannot be read."""

    if not isinstance(folder, str):
        return None
    try:
        eps = read_meta(folder)[1].get("epsilon")
    except (FolderError, OSError):
        return None
    return float(eps) if isinstance(eps, int | float) and not isinstance(eps, bool) else None


class _Paired:
    """MIG per seed of the final rows, by configuration, with collapsed restarts (fewer active units than
    factors) set aside."""

    def __init__(self, fin: pd.DataFrame, metric: str = "mig"):
        from analysis.stats import overpruned  # scipy: only where a paired claim is made

        collapsed = overpruned(fin["active_units"].to_numpy(float), n_factors(fin))
        self.metric = metric
        self.values = {k: g.set_index("seed")[metric].astype(float)
                       for k, g in fin[~collapsed].groupby(["study", "config_key"])}
        self.collapsed = {k: int(g.sum()) for k, g in pd.Series(collapsed, index=fin.index).groupby(
            [fin["study"], fin["config_key"]])}

    def aligned(self, keys: list[tuple[str, str]]) -> tuple[list[np.ndarray], int]:
        """The metric of each configuration in `keys` over the seeds every one of them has (collapsed restarts
        left out), and how many collapsed restarts the configurations hold."""
        series = [self.values.get(k, pd.Series(dtype=float)).dropna() for k in keys]
        seeds = sorted(set.intersection(*(set(s.index) for s in series))) if series else []
        return [s.loc[seeds].to_numpy(float) for s in series], sum(self.collapsed.get(k, 0) for k in keys)


def _test_text(name: str, test: dict, detail: str) -> str:
    return (f"{name} {detail}, Wilcoxon p = {test['wilcoxon_p']:.3g} (sign p = {test['sign_p']:.3g}), "
            f"{test['n']} pairs" if test["n"] else f"{name}: no pairs")


def _verdict(parts: list[tuple[dict, str]], excluded: int) -> str:
    """'holds' when every test has p < SIGNIFICANCE, else 'fails'; then each test in words."""
    from analysis.stats import SIGNIFICANCE
    if not parts:
        return ""
    ok = all(t["n"] and t["wilcoxon_p"] < SIGNIFICANCE for t, _ in parts)
    tail = f"; {excluded} collapsed restarts excluded with their pairs" if excluded else "; no collapsed restarts"
    return (f"{'holds' if ok else 'fails'} (one-sided paired test, p < {SIGNIFICANCE} needed for each): "
            + "; ".join(text for _, text in parts) + tail)


Key = tuple  # (model, base): one configuration on the original data and its variants
Configs = dict[Key, tuple[str, str]]  # -> (study, config_key)


def _variants(c: pd.DataFrame, orig: Configs, kind: str) -> dict[str, Configs]:
    """vlabel -> the `kind` (mod | noise) configurations that have an original-data configuration."""
    out: dict[str, Configs] = {}
    for r in c[c["variant"] == kind].itertuples():
        if (r.model, r.base) in orig:
            out.setdefault(r.vlabel, {})[(r.model, r.base)] = (r.study, r.config_key)
    return out


def _claim(paired: _Paired, keys: list[Key], configs: list[Configs], label: dict[Key, str],
           diff: Callable[[list[np.ndarray]], tuple[np.ndarray, np.ndarray, str]]) -> str:
    """The verdict of one claim: per key, `diff` of the aligned per-seed values of that key in each of
    `configs` gives (x, y, words); x > y is tested one-sided and paired."""
    from analysis.stats import paired_test
    parts, excluded = [], 0
    for key in keys:
        values, ex = paired.aligned([cfg[key] for cfg in configs])
        x, y, words = diff(values)
        t = paired_test(x, y)
        excluded += ex
        parts.append((t, _test_text(label[key], t, words if len(x) else "")))
    return _verdict(parts, excluded)


def _perturbed_claims(fin: pd.DataFrame) -> list[tuple[str, str]]:
    """Thesis §4.3.2–4.3.3 on MIG, each as one-sided paired tests over seeds (module docstring), per dataset and
    per data variant (each perturbation and noise configuration on its own):
    every VAE's MIG drops on the modified data; the AE's and PCL's drop less than every VAE's (the AE is
    unaffected, PCL barely); the modification lowers every VAE's MIG more than noise of the same size does."""
    out: list[tuple[str, str]] = []
    configs = _variant_configs(fin)
    if not (configs["variant"] == "mod").any():  # every claim compares with the modified data
        return out
    paired = _Paired(fin)
    for ds in sorted(configs["dataset"].unique()):
        c = configs[configs["dataset"] == ds]
        on_orig = c[c["variant"] == "orig"]
        orig: Configs = {(r.model, r.base): (r.study, r.config_key) for r in on_orig.itertuples()}
        label = {(r.model, r.base): r.base_label for r in on_orig.itertuples()}
        vaes = {m for m in c["model"].unique() if m not in ("ae", "pcl")}
        noises, mods = _variants(c, orig, "noise"), _variants(c, orig, "mod")
        out += _epsilon_claims(ds, c, mods, vaes, paired, label)
        for vlabel, mod in mods.items():
            keys = sorted(k for k in mod if k[0] in vaes)
            if keys:
                out.append((f"{ds}, {vlabel}: every VAE's MIG drops on the modified data",
                            _claim(paired, keys, [orig, mod], label,
                                   lambda v: (v[0], v[1], f"{np.mean(v[0]):.2f} → {np.mean(v[1]):.2f}"))))
            for other, name in (("ae", "the AE's"), ("pcl", "PCL's")):
                for okey in sorted(k for k in mod if k[0] == other) if keys else []:
                    other_orig, other_mod = dict.fromkeys(keys, orig[okey]), dict.fromkeys(keys, mod[okey])
                    out.append((f"{ds}, {vlabel}: {name} MIG drops less than every VAE's ({label[okey]})",
                                _claim(paired, keys, [orig, mod, other_orig, other_mod], label, _drops)))
            for nlabel, noise in noises.items():
                nkeys = [k for k in keys if k in noise]
                if nkeys:
                    out.append((f"{ds}: the modification ({vlabel}) lowers every VAE's MIG more than noise ({nlabel})",
                                _claim(paired, nkeys, [noise, mod], label,
                                       lambda v: (v[0], v[1], f"noise {np.mean(v[0]):.2f} vs mod. "
                                                  f"{np.mean(v[1]):.2f}"))))
    return out


def _epsilon_claims(ds: str, c: pd.DataFrame, mods: dict[str, Configs], vaes: set[str], paired: _Paired,
                    label: dict[Key, str]) -> list[tuple[str, str]]:
    """Thesis §4.3.3: a smaller ε lowers MIG less. For each two perturbations of one dataset, ordered by the ε
    their folders record: every VAE's MIG at the smaller ε exceeds that at the larger (paired by seed)."""
    folder = {r.vlabel: r.folder for r in c[c["variant"] == "mod"].itertuples()}
    eps = {v: perturbation_epsilon(folder.get(v)) for v in mods}
    unknown = sorted(v for v, e in eps.items() if e is None)
    known = sorted((e, v) for v, e in eps.items() if e is not None)
    out = []
    for (e_small, small), (e_large, large) in zip(known, known[1:], strict=False):
        if e_small == e_large:
            continue
        keys = sorted(k for k in mods[small] if k[0] in vaes and k in mods[large])
        if keys:
            out.append((f"{ds}: every VAE's MIG drops less at the smaller ε ({small}, ε = {e_small:g}) than at the "
                        f"larger ({large}, ε = {e_large:g})",
                        _claim(paired, keys, [mods[small], mods[large]], label,
                               lambda v: (v[0], v[1], f"{np.mean(v[0]):.2f} vs {np.mean(v[1]):.2f}"))))
    if len(mods) > 1 and unknown:
        out.append((f"{ds}: every VAE's MIG drops less at the smaller ε",
                    f"not tested: the ε of {', '.join(unknown)} is unknown (its perturbation folder cannot be read "
                    "from here; run compare where the study's relative paths resolve)"))
    return out


def _drops(v: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, str]:
    """(VAE's drop, the other model's drop, words) from [VAE orig, VAE mod, other orig, other mod]."""
    vae, other = v[0] - v[1], v[2] - v[3]
    return vae, other, f"drop {np.mean(vae):.2f} vs {np.mean(other):.2f}"


def _final(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["epoch"] == df["epochs"]]


def claims(df: pd.DataFrame, study: str) -> list[tuple[str, str]]:
    """The papers' qualitative findings, each checked on this study's data: (claim, 'holds …'/'fails …'), for
    every paper study that applies (`paper_studies`). Only the perturbed-data claims read the data variants;
    the others read the restarts on the original data."""
    bases = paper_studies(df, study)
    out: list[tuple[str, str]] = []
    if "zietlow2021_perturbed" in bases and "variant" in df:
        out += _perturbed_claims(_final(df))
    if "variant" in df:
        df = df[df["variant"] == "orig"]
    fin = _final(df)
    if "rolinek2019_table3" in bases:
        for ds in sorted(fin["dataset"].unique()):
            means = fin[fin["dataset"] == ds].groupby("model")["dto"].mean()
            rnd = df[(df["dataset"] == ds) & (df["epoch"] == 0) & (df["model"] == "beta_vae")]["dto"].mean()
            if "beta_vae" not in means:
                continue
            others = {k: v for k, v in (means.to_dict() | {"random decoder": rnd}).items()
                      if k != "beta_vae" and not math.isnan(v)}  # what is not measured is not compared
            ok = all(means["beta_vae"] < v for v in others.values())
            detail = ", ".join(f"{k} {v:.2f}" for k, v in others.items())
            out.append((f"{ds}: beta-VAE DtO below VAE, AE, beta-VAE_Sigma and the random decoder",
                        f"{'holds' if ok else 'fails'}: beta-VAE {means['beta_vae']:.2f} vs {detail}"))
        lin = fin[(fin["dataset"] == "synth_lin") & (fin["model"] == "beta_vae")]
        if len(lin):
            ok = lin["dto"].mean() < 0.05 and lin["ds"].mean() > 0.9
            verdict = "holds" if ok else "not measured (no DS recorded)" if lin["ds"].isna().all() else "fails"
            out.append(("synth_lin: beta-VAE DtO ≈ 0 and DS ≈ 1",
                        f"{verdict}: DtO {lin['dto'].mean():.3f}, DS {lin['ds'].mean():.3f}"))
    if "rolinek2019_restarts" in bases:
        for epoch in sorted(df.loc[df["epoch"] > 0, "epoch"].unique()):
            sub = df[(df["epoch"] == epoch) & (df["model"] == "beta_vae")][["dto", "ds"]].dropna()
            if len(sub) >= 4:
                from scipy.stats import spearmanr

                rho, pval = spearmanr(sub["dto"], sub["ds"])
                verdict = "fails" if rho >= 0 else ("holds" if pval < 0.05 else "inconclusive (not significant)")
                out.append((f"dsprites epoch {epoch}: DtO and DS negatively correlated across restarts",
                            f"{verdict}: Spearman ρ = {rho:.2f} (p = {pval:.3f}, n = {len(sub)})"))
    if "rolinek2019_degenerate" in bases:
        g = fin[fin["dataset"] == "synth_lin"].groupby("ratio")[["dto", "ds"]].mean().sort_index()
        if len(g) >= 2:
            falls = bool(np.all(np.diff(g["dto"].to_numpy()) < 0))
            rises = bool(np.all(np.diff(g["ds"].to_numpy()) > 0))
            out.append(("synth_lin: DtO falls and DS rises as the ratio grows",
                        f"{'holds' if falls and rises else 'fails'}: " + "; ".join(
                            f"ratio {r}: DtO {row.dto:.2f}, DS {row.ds:.2f}" for r, row in g.iterrows())))
    if "rolinek2019_polarized" in bases:
        g = fin.groupby(["dataset", "latent_dim"])["polarized_fraction"].mean() * 100
        for (ds, k), v in g.items():
            out.append((f"{ds} latent {k}: polarised regime holds for > 90% of training",
                        f"{'holds' if v > 90 else 'fails'}: {v:.1f}%"))
    if "zietlow2021_restarts" in bases:
        for ds in sorted(fin["dataset"].unique()):
            means = fin[fin["dataset"] == ds].groupby("model")["mig"].mean()
            if "ae" not in means or len(means) < 2:
                continue
            vaes = {k: v for k, v in means.items() if k != "ae"}
            ok = all(v > means["ae"] for v in vaes.values())
            out.append((f"{ds}: every disentangling VAE's MIG above the AE's (thesis Table 4.2, original data)",
                        f"{'holds' if ok else 'fails'}: AE {means['ae']:.2f} vs "
                        + ", ".join(f"{k} {v:.2f}" for k, v in vaes.items())))
    if "rolinek2019_beta_search" in bases:
        g = fin.groupby(["dataset", "beta"])[["ds", "dto"]].agg(["mean", "std", "count"])
        for (ds, beta), r in g.iterrows():
            out.append((f"{ds} beta={beta:g}: DS and DtO (line search, thesis Fig. 3.7)",
                        f"measured: DS {r[('ds', 'mean')]:.2f} ± {r[('ds', 'std')]:.2f}, DtO "
                        f"{r[('dto', 'mean')]:.2f} ± {r[('dto', 'std')]:.2f} (n = {int(r[('ds', 'count')])})"))
    return out


def study_markdown(study_dir: str) -> str:
    df = load_rows(study_dir)
    study = str(df["study"].iloc[0]) if len(df) else study_dir.rstrip("/").rsplit("/", 1)[-1]
    if paper_study(study) == bhowal.STUDY:  # its own tables and claims (analysis.bhowal)
        return bhowal.study_markdown(study_dir, study)
    parts = [f"### `{study}`", ""]
    rows = compare(df, study)
    if rows:
        variant = [c for c in rows if c.row.source.startswith("thesis Table 4")]
        other = [c for c in rows if c not in variant]
        tables = ([variant_markdown(variant)] if variant else []) + ([comparison_markdown(other)] if other else [])
        table = "\n\n".join(tables)
        parts += [table, "",
                  "Verdict: *agrees* when the 1-σ intervals overlap (|Δ| ≤ σ_ours + σ_paper; Table 3.2 gives no "
                  "spread: |Δ| ≤ 3 points), otherwise *differs*.", ""]
    cl = claims(df, study)
    if cl:
        parts += ["| claim | on this data |", "|---|---|", *[f"| {c} | {r} |" for c, r in cl], ""]
    if not rows and not cl:
        parts.append("No published numbers registered for this study.")
    return "\n".join(parts)
