"""Modularity and explicitness (Ridgeway & Mozer 2018, "Learning Deep Disentangled Embeddings With the
F-Statistic Loss", Sec. 3; disentanglement_lib `modularity_explicitness.py`).

Modularity. The codes of the training set are cut into `num_bins` (20) equal-width bins per latent
(`discrete.histogram_discretize`) and the empirical mutual information m_jk = I(z_j; v_k) in nats is
taken against the factor classes, giving a (d, K) matrix. Per latent j, with θ_j = max_k m_jk,

    δ_j = (Σ_k m_jk² − θ_j²) / (θ_j² (K − 1)),      modularity_j = 1 − δ_j,

i.e. the squared deviation of the row from its ideal template (all MI on one factor), relative to the
template. modularity_j is 1 when the latent is informative about one factor only, 0 when it is equally
informative about all K, and is set to 0 for a latent with no information (θ_j = 0: a constant or
collapsed latent). The score is the plain mean over all d latents, inactive ones included (as in the
reference, so collapsed latents pull the score down). Dimensionless, in [0, 1].

Explicitness. The codes are standardised with the training mean and standard deviation; per factor, a
one-vs-rest L2 logistic regression (liblinear, C = 1) predicts the factor class from the whole code; its
class probabilities are scored by the macro-averaged one-vs-rest ROC-AUC on the train and on the test
codes. explicitness_train/test are the means over factors. Dimensionless, in [0, 1]; 0.5 is chance.

Factors are class indices (N, K); continuous factors (synthetic datasets) are discretised with the same
20-bin equal-width rule as MIG (`discrete.factor_classes`). disentanglement_lib uses 10,000 train and
5,000 test points.

Deviations from the reference, each where the reference is undefined, crashes, or depends on an
sklearn default that has since changed:

* The classifier is pinned to `OneVsRestClassifier(LogisticRegression(solver="liblinear"))`: the
  reference calls `LogisticRegression()`, whose default in the sklearn of its time (< 0.22) was exactly
  liblinear one-vs-rest; today's default (lbfgs, multinomial) would give different numbers.
* The factor classes of train and test are taken together (one class index per value, one set of bin
  edges for a continuous factor), so that the test labels are binarised against the classifier's classes;
  the reference binarises each set on its own and misaligns the columns when the two sets do not hold the
  same classes. A class absent from the set being scored (no positives) is left out of the macro mean,
  where `roc_auc_score` would raise.
* A constant latent (standard deviation 0) is centred but not scaled (the reference divides by 0).
* A factor with a single class in training has no classifier: its explicitness is NaN and it is left out
  of the means (None if no factor is left).
* With a single factor (K = 1) the reference's δ is 0/0; an informative latent is then trivially modular
  and scores 1.
* Continuous factors are binned (above); the reference would treat every distinct value as a class.
"""

from __future__ import annotations

import warnings

import numpy as np

from workers.metrics.discrete import NUM_BINS, factor_classes, histogram_discretize, mutual_info
from workers.metrics.validate import check_pair


def modularity(mutual_information: np.ndarray) -> float:
    """Modularity of a (d, K) mutual-information matrix (latents × factors, any non-negative unit).

    Mean over the d rows of 1 − (Σ_k m_jk² − max_k m_jk²) / (max_k m_jk² (K − 1)); a row with no
    information scores 0, and with K = 1 an informative row scores 1."""
    mi = np.asarray(mutual_information, dtype=np.float64)
    if mi.ndim != 2 or mi.shape[0] == 0 or mi.shape[1] == 0:
        raise ValueError(f"mutual_information must be a non-empty (d, K) array, got shape {mi.shape}")
    squared = np.square(mi)
    top = squared.max(axis=1)
    informative = top > 0
    score = np.zeros(mi.shape[0])
    if mi.shape[1] == 1:
        score[informative] = 1.0
    else:
        rest = squared.sum(axis=1) - top
        score[informative] = 1.0 - rest[informative] / (top[informative] * (mi.shape[1] - 1.0))
    return float(score.mean())


def _macro_auc(labels: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Unweighted mean over classes of the one-vs-rest ROC-AUC of proba[:, c]; classes with no positive
    or no negative among `labels` are left out (NaN if none is left)."""
    from sklearn.metrics import roc_auc_score

    aucs = []
    for c, cls in enumerate(classes):
        positive = labels == cls
        if positive.all() or not positive.any():
            continue
        aucs.append(roc_auc_score(positive, proba[:, c]))
    return float(np.mean(aucs)) if aucs else float("nan")


def explicitness_per_factor(
    codes_train: np.ndarray, factor_train: np.ndarray, codes_test: np.ndarray, factor_test: np.ndarray
) -> tuple[float, float]:
    """(train, test) macro one-vs-rest ROC-AUC of a one-vs-rest logistic regression predicting one factor.

    codes_train (N, d) and codes_test (M, d) as given (modularity_explicitness standardises them first);
    factor_train (N,) and factor_test (M,) class labels. (NaN, NaN) if training holds a single class."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    y_train = np.asarray(factor_train).reshape(-1)
    y_test = np.asarray(factor_test).reshape(-1)
    if np.unique(y_train).size < 2:
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = OneVsRestClassifier(LogisticRegression(solver="liblinear")).fit(codes_train, y_train)
    return (
        _macro_auc(y_train, clf.predict_proba(codes_train), clf.classes_),
        _macro_auc(y_test, clf.predict_proba(codes_test), clf.classes_),
    )


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets centred and scaled with the training mean and standard deviation (constant latents:
    centred only)."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def modularity_explicitness(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    *,
    discrete: np.ndarray | list[bool] | None = None,
    num_bins: int = NUM_BINS,
) -> dict[str, float | None]:
    """Modularity (on the training set) and train/test explicitness of codes w.r.t. factors.

    codes_train (N, d), factors_train (N, K), codes_test (M, d), factors_test (M, K); `discrete` (K,) bool
    marks discrete factors (None: integer-valued columns are discrete).
    Returns {"modularity": float, "explicitness_train": float | None, "explicitness_test": float | None}
    (explicitness None only when every factor is constant in training)."""
    codes_train, factors_train = check_pair(codes_train, factors_train)
    codes_test, factors_test = check_pair(codes_test, factors_test)
    n = codes_train.shape[0]
    if codes_test.shape[1] != codes_train.shape[1] or factors_test.shape[1] != factors_train.shape[1]:
        raise ValueError("train and test must have the same number of latents and of factors")

    classes = factor_classes(np.vstack([factors_train, factors_test]), discrete, num_bins)
    y_train, y_test = classes[:n], classes[n:]

    mi = mutual_info(histogram_discretize(codes_train, num_bins), y_train)
    z_train, z_test = _standardise(codes_train, codes_test)
    auc = np.array(
        [explicitness_per_factor(z_train, y_train[:, k], z_test, y_test[:, k]) for k in range(classes.shape[1])]
    )

    def _mean(col: np.ndarray) -> float | None:
        col = col[~np.isnan(col)]
        return float(col.mean()) if col.size else None

    return {
        "modularity": modularity(mi),
        "explicitness_train": _mean(auc[:, 0]),
        "explicitness_test": _mean(auc[:, 1]),
    }
