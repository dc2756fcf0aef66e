"""The metric registry: every metric declared once (design.md §6).

Each entry names the metric as a study requests it (`eval.metrics`), the store columns it writes and
their kinds, the inputs it needs and the function that computes it from a checkpoint's inputs. The study
validation, the checkpoint evaluation, the Parquet schema and the analysis lists are all derived from
`METRICS`. Adding a metric = one entry here + its pure function (one file) + its tests.

This module imports nothing heavy: the `compute` functions import their metric module when called, so
reading the registry (the CLI, the schema, the analysis) costs no torch, sklearn or numba.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from workers.metrics.inputs import CheckpointInputs

ColumnKind = Literal["float", "int", "list"]  # list = list of floats (one value per factor, latent or factor pair)
Need = Literal["factors", "posterior", "jacobian", "decoder", "supervised", "interventions", "restarts"]
Scope = Literal["checkpoint", "configuration"]
Role = Literal["orthogonality", "disentanglement", "posterior"]

NEEDS: dict[str, str] = {
    "factors": "ground-truth factors of the held-out points (null on datasets without factors)",
    "posterior": "posterior means and variances of the held-out points",
    "jacobian": "decoder Jacobians at the held-out posterior means",
    "decoder": "the decoder at codes drawn from the posteriors of held-out points (local fits per point)",
    "supervised": "fresh (codes, factors) samples from the generative model, train and test",
    "interventions": "encodings of batches that fix one factor (FactorVAE / BetaVAE protocols)",
    "restarts": "the encodings of every restart of the configuration on the same points (UDR)",
}
# What a trial computes itself when evaluation is asynchronous: metrics needing only the held-out
# encodings and the decoder; everything else goes to the evaluation stage's CPU tasks.
DEVICE_NEEDS: frozenset[str] = frozenset({"jacobian", "posterior"})


@dataclass(frozen=True)
class Metric:
    """One metric: what a study calls it, what it writes, what it needs and how it is computed.

    columns: store column -> kind; headline: the columns the analysis treats as this metric's score
    (correlated with DtO, tabulated), higher = more of `role`, except for orthogonality where lower DtO
    means closer to orthogonal. scope: "checkpoint" metrics are computed from one seed's model
    (`compute`); "configuration" metrics from all restarts of a configuration at once, by the evaluation
    stage (`compute` is None; `workers.evaluation` runs them).
    """

    name: str
    columns: dict[str, ColumnKind]
    needs: frozenset[Need]
    role: Role
    headline: tuple[str, ...]
    compute: Callable[[CheckpointInputs], dict[str, Any]] | None
    doc: str
    scope: Scope = "checkpoint"

    @property
    def needs_factors(self) -> bool:
        return bool(self.needs & {"factors", "supervised", "interventions"})

    @property
    def device_side(self) -> bool:
        """Computed inside the trial even when evaluation is asynchronous (see DEVICE_NEEDS)."""
        return self.scope == "checkpoint" and self.needs <= DEVICE_NEEDS


def _dto(x: CheckpointInputs) -> dict[str, Any]:
    return {k: x.jacobian[k] for k in ("dto", "dto_active")}


def _c_ima(x: CheckpointInputs) -> dict[str, Any]:
    return {"c_ima": x.jacobian["c_ima"]}


def _od_score(x: CheckpointInputs) -> dict[str, Any]:
    from workers.metrics.od_score import od_score_from_gram

    return od_score_from_gram(x.gram)


def _local_decoder(x: CheckpointInputs) -> dict[str, Any]:
    from workers.metrics.local_decoder import local_decoder

    return local_decoder(x.model.decode, x.codes, x.posterior, seed=x.stream("local_decoder"), device=x.device)


def _polarized(x: CheckpointInputs) -> dict[str, Any]:
    from workers.metrics.polarized import polarized

    return polarized(x.codes, **x.posterior)


def _ds(x: CheckpointInputs) -> dict[str, Any]:
    from workers.metrics.ds import ds

    return ds(x.codes, x.factors, discrete=x.discrete, seed=x.stream("ds"))


def _mig(x: CheckpointInputs) -> dict[str, Any]:
    from workers.metrics.mig import mig

    return mig(x.codes, x.factors, discrete=x.discrete)


def _mig_sup(x: CheckpointInputs) -> dict[str, Any]:
    from workers.metrics.mig import mig_sup

    return mig_sup(x.codes, x.factors, discrete=x.discrete, active=x.active)


def _dci(x: CheckpointInputs) -> dict[str, Any]:
    from workers.metrics.dci import dci

    c_tr, f_tr, c_te, f_te = x.supervised
    return dci(c_tr, f_tr, c_te, f_te, seed=x.stream("dci"), discrete=x.discrete, n_jobs=x.n_jobs)


def _sap(x: CheckpointInputs) -> dict[str, Any]:
    from workers.metrics.sap import sap

    c_tr, f_tr, c_te, f_te = x.supervised
    return sap(c_tr, f_tr, c_te, f_te, continuous=~x.discrete)


def _factorvae(x: CheckpointInputs) -> dict[str, Any]:
    from workers.metrics.factorvae import factorvae_score

    return factorvae_score(x.encode, x.dataset, seed=x.stream("factorvae"), num_train=x.n_train_supervised,
                           num_eval=x.n_test_supervised, num_variance_estimate=x.n_train_supervised)


def _betavae(x: CheckpointInputs) -> dict[str, Any]:
    from workers.metrics.betavae import betavae_score

    return betavae_score(x.encode, x.dataset, seed=x.stream("betavae"), num_train=x.n_train_supervised,
                         num_eval=x.n_test_supervised)


def _modularity(x: CheckpointInputs) -> dict[str, Any]:
    from workers.metrics.modularity import modularity_explicitness

    c_tr, f_tr, c_te, f_te = x.supervised
    return modularity_explicitness(c_tr, f_tr, c_te, f_te, discrete=x.discrete)


def _irs(x: CheckpointInputs) -> dict[str, Any]:
    from workers.metrics.irs import irs

    return irs(x.supervised[0], x.supervised_classes[0])


def _unsupervised(x: CheckpointInputs) -> dict[str, Any]:
    from workers.metrics.unsupervised import unsupervised_scores

    return unsupervised_scores(x.codes)


def _embedding(x: CheckpointInputs) -> dict[str, Any]:
    import numpy as np

    from workers.metrics.embedding import CONTINUOUS_QUANTILES, embedding_score

    continuous = np.flatnonzero(~x.discrete)
    ranges = ({int(k): tuple(np.quantile(x.factors[:, k].astype(float), CONTINUOUS_QUANTILES)) for k in continuous}
              if continuous.size else {})
    return embedding_score(x.encode, x.dataset, seed=x.stream("embedding"), ranges=ranges)


def _downstream(predictor: Literal["logreg", "gbt"]) -> Callable[[CheckpointInputs], dict[str, Any]]:
    def compute(x: CheckpointInputs) -> dict[str, Any]:
        from workers.metrics.downstream import downstream_scores

        c_tr, _, c_te, _ = x.supervised
        k_tr, k_te = x.supervised_classes
        return downstream_scores(c_tr, k_tr, c_te, k_te, predictor=predictor, sizes=DOWNSTREAM_SIZES,
                                 seed=x.stream(f"downstream_{predictor}"), n_jobs=x.n_jobs)

    return compute


DOWNSTREAM_SIZES = (10, 100, 1000, 10000)  # disentanglement_lib's training-set sizes


def _downstream_columns(predictor: str) -> dict[str, ColumnKind]:
    return {f"downstream_{predictor}_{n}_{part}": "float" for n in DOWNSTREAM_SIZES for part in ("train", "test")}


def _metric(name: str, columns: dict[str, ColumnKind], needs: tuple[Need, ...], role: Role,
            headline: tuple[str, ...], compute: Callable[[CheckpointInputs], dict[str, Any]] | None, doc: str,
            scope: Scope = "checkpoint") -> Metric:
    return Metric(name, columns, frozenset(needs), role, headline, compute, doc, scope)


METRICS: dict[str, Metric] = {m.name: m for m in (
    _metric("dto", {"dto": "float", "dto_active": "float"}, ("jacobian",), "orthogonality", ("dto", "dto_active"),
            _dto, "distance of the decoder Jacobian's right singular vectors to the nearest signed permutation"),
    _metric("c_ima", {"c_ima": "float"}, ("jacobian",), "orthogonality", ("c_ima",), _c_ima,
            "IMA contrast of the decoder Jacobian's columns (0 = orthogonal)"),
    _metric("od_score", {"od_u": "float", "od_sigma": "float", "od_v": "float", "od_score": "float"}, ("jacobian",),
            "orthogonality", ("od_score",), _od_score,
            "OD-Score (Bhowal et al. 2024): squared distances of the decoder Jacobian's SVD factors U, Σ, V to those "
            "of its orthogonal polar factor, un-normalised (the analysis divides by the max over compared models)"),
    _metric("local_decoder", {"local_decoder_linear": "float", "local_decoder_nonlinear": "float",
                              "local_decoder_stoch_jacobian": "float", "local_decoder_stoch_nonlinear": "float"},
            ("posterior", "decoder"), "posterior", (), _local_decoder,
            "Bhowal et al. 2024 Tables 1-2: unexplained share of Dec(mu + eps) - Dec(mu) for a linear and a "
            "one-tanh local decoder fitted per point; relative error of the Jacobian and the tanh estimate of "
            "the stochastic reconstruction loss"),
    _metric("polarized", {"kl_per_dim": "list", "sigma2_per_dim": "list", "active_units": "int",
                          "active_units_mu": "int", "polarized_delta_kl": "float"},
            ("posterior",), "posterior", ("active_units",), _polarized,
            "the polarised regime: per-latent KL and variance, active units, relative KL gap"),
    _metric("ds", {"ds": "float", "ds_per_factor": "list"}, ("factors",), "disentanglement", ("ds",), _ds,
            "disentanglement score: best-vs-second single-latent kNN predictor per factor"),
    _metric("mig", {"mig": "float", "mig_per_factor": "list"}, ("factors",), "disentanglement", ("mig",), _mig,
            "mutual information gap, 20-bin histograms"),
    _metric("mig_sup", {"mig_sup": "float"}, ("factors",), "disentanglement", ("mig_sup",), _mig_sup,
            "MIG-sup: the transposed gap per active latent"),
    _metric("dci", {"dci_disentanglement": "float", "dci_completeness": "float",
                    "dci_informativeness_train": "float", "dci_informativeness_test": "float"},
            ("supervised",), "disentanglement", ("dci_disentanglement",), _dci,
            "DCI from gradient-boosted-tree importances"),
    _metric("sap", {"sap": "float"}, ("supervised",), "disentanglement", ("sap",), _sap,
            "separated attribute predictability"),
    _metric("factorvae", {"factorvae_train": "float", "factorvae_eval": "float", "factorvae_active_dims": "int"},
            ("interventions",), "disentanglement", ("factorvae_eval",), _factorvae,
            "FactorVAE score: majority-vote classifier on the least-variant latent"),
    _metric("betavae", {"betavae_train": "float", "betavae_eval": "float"}, ("interventions",),
            "disentanglement", ("betavae_eval",), _betavae,
            "BetaVAE score: logistic regression on |z1 - z2| of pairs sharing one factor"),
    _metric("modularity", {"modularity": "float", "explicitness_train": "float", "explicitness_test": "float"},
            ("supervised",), "disentanglement", ("modularity",), _modularity,
            "modularity (mutual-information template) and explicitness (logistic-regression ROC-AUC)"),
    _metric("irs", {"irs": "float", "irs_per_factor": "list", "irs_active_dims": "int"}, ("supervised",),
            "disentanglement", ("irs",), _irs, "interventional robustness score (99% quantile of deviations)"),
    _metric("unsupervised", {"gaussian_total_correlation": "float", "gaussian_wasserstein_correlation": "float",
                             "gaussian_wasserstein_correlation_norm": "float", "mutual_info_score": "float"},
            ("posterior",), "posterior", (), _unsupervised,
            "Gaussian total correlation, Gaussian Wasserstein correlation, latent mutual information"),
    _metric("downstream_logreg", _downstream_columns("logreg"), ("supervised",), "disentanglement", (),
            _downstream("logreg"), "per-factor logistic regression (5-fold CV) trained on 10..10,000 samples"),
    _metric("downstream_gbt", _downstream_columns("gbt"), ("supervised",), "disentanglement", (),
            _downstream("gbt"), "per-factor gradient-boosted trees trained on 10..10,000 samples"),
    _metric("embedding", {"polar_pairs": "int", "aligned_pairs": "int", "mixed_pairs": "int",
                          "polar_fraction": "float", "aligned_fraction": "float", "mixed_fraction": "float",
                          "embedding_residual_cartesian": "float", "embedding_residual_polar": "float",
                          "embedding_axis_purity": "float", "embedding_per_pair": "list"},
            ("interventions",), "disentanglement", (), _embedding,
            "aligned / linearly mixed / polar embedding of each factor pair (thesis §4.3.6) from the codes of "
            "factor grids: one factor per latent axis; latents moved by both factors; or a grid bent around a "
            "centre (one factor the radius, the other the angle of two latents)"),
    _metric("udr", {"udr_spearman": "float", "udr_lasso": "float"}, ("restarts",), "disentanglement",
            ("udr_spearman",), None, "unsupervised disentanglement ranking: median pairwise similarity of a "
            "restart to the other restarts of its configuration (Spearman and Lasso)", scope="configuration"),
)}

# Columns a checkpoint row holds beside the metrics': written by the trainer from its own state.
TRAINER_COLUMNS: dict[str, ColumnKind] = {"polarized_fraction": "float"}


def metric_columns() -> dict[str, ColumnKind]:
    """Every metric column of the store, in registry order, then the trainer's own."""
    out: dict[str, ColumnKind] = {}
    for m in METRICS.values():
        out.update(m.columns)
    out.update(TRAINER_COLUMNS)
    return out


def headline_columns(role: Role) -> tuple[str, ...]:
    """The headline columns of every metric with `role`, in registry order."""
    return tuple(c for m in METRICS.values() if m.role == role for c in m.headline)


def scalar_columns() -> tuple[str, ...]:
    """Metric columns holding one number per row (not per-factor lists)."""
    return tuple(c for c, kind in metric_columns().items() if kind != "list")
