"""Downstream classification task (disentanglement_lib `downstream_task.py`): how well small labelled sets
of codes predict the factors.

For each training size n in `sizes` and each factor k, a predictor is fit on n pairs (z_i, y_ik) and
scored by its accuracy (fraction of correct class predictions, in [0, 1]) on those n pairs (train) and
on the whole test set (test). Reported per n: the mean over the K factors of both accuracies,

    downstream_{predictor}_{n}_train = (1/K) Σ_k acc(f_k; train_n),
    downstream_{predictor}_{n}_test  = (1/K) Σ_k acc(f_k; test).

The library's defaults: n ∈ {10, 100, 1000, 10000}, 5,000 test points. Predictors (`utils.py`):

* "logreg", its `logistic_regression_cv`: `LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5))` (lbfgs, L2,
  C chosen from 10 log-spaced values in [1e-4, 1e4] by mean fold accuracy, then refit on all n);
* "gbt", its `gradient_boosting_classifier`: sklearn's default `GradientBoostingClassifier`, here its exact
  numba reimplementation `gbt.fit_gbt_classifier` (same trees and predictions, much faster; see gbt.py).

Deviations from the library, and why:

* Samples. The library draws a fresh train set and a fresh test set from the dataset for every n. These
  functions take arrays: for each n, n rows are drawn without replacement from codes_train by a generator
  seeded with (seed, n) (independent of the other sizes, and of the row order of the pool), and every n
  is scored on the same test set. Each train set is still an i.i.d. sample if the pool is; sharing the
  test set only removes test-set noise from the differences between sizes. A size larger than the pool
  gives None for both its values (no resampling with replacement, which would inflate train accuracy).
* Multiclass logistic regression. The library fixes no scikit-learn version. In the versions of its
  time (< 0.22) `LogisticRegressionCV` fitted one-vs-rest by default (C chosen per class on that binary
  problem's fold accuracy, prediction by the largest decision value); current versions fit only the
  multinomial (softmax) model, which is what is used here (`LOGREG_MULTICLASS`). The difference is not
  cosmetic: one-vs-rest linear models cannot isolate a middle class of a factor encoded along one latent
  (class 1 of 0..3 is not linearly separable from the rest on a line), so on such codes it scores
  markedly lower (measured: 0.75 instead of 1.0 test accuracy on a 4-class factor copied into one latent,
  n = 1000), while the multinomial model represents intervals. Setting LOGREG_MULTICLASS = "ovr" pins the
  old behaviour as `OneVsRestClassifier(LogisticRegressionCV(...))`, which is that procedure. Binary
  factors get the same single binary model either way. The other arguments are passed explicitly at
  the values the library got by default (accuracy scoring, pure L2) only to silence scikit-learn's
  announcements of future default changes; lbfgs' ConvergenceWarning (max_iter=100, as the library) is
  silenced, not acted on.
* Unshuffled KFold at n = 10. With 5 folds of 2 samples, a training fold can miss a class, or a binary
  one-vs-rest problem can be constant within a fold. The installed scikit-learn (1.9) fits and scores
  such folds without error (checked on many random n = 10 draws, tests included), so folds are left as
  the library makes them, not stratified or reshuffled: changing them would change the chosen C. What it
  cannot fit, nor can the GBT, is a factor whose n training labels are all one class (likely at n = 10
  for a factor with few values of very unequal frequency); the library would crash there. Here that
  factor's predictor is the constant predictor of that class: train accuracy 1, test accuracy the test
  frequency of the class (the same convention as DCI's `fit_factor`). n must be ≥ 5 for "logreg" (one
  sample per fold at least) and ≥ 2 for "gbt".
* Seeds. The library leaves the GBT's random_state unset (its feature-order tie breaking is then not
  reproducible); here it is `seed`. LogisticRegressionCV with lbfgs and unshuffled folds is deterministic.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from workers.metrics.validate import check_pair

DOWNSTREAM_SIZES = (10, 100, 1000, 10000)
PREDICTORS = ("logreg", "gbt")
LOGREG_CS = 10
LOGREG_FOLDS = 5
MIN_SIZE = {"logreg": LOGREG_FOLDS, "gbt": 2}
# the module docstring says why; change it here: an assignment at run time does not reach n_jobs > 1 workers
LOGREG_MULTICLASS: Literal["multinomial", "ovr"] = "multinomial"


def _logreg_cv():
    """The library's `logistic_regression_cv` with the multiclass scheme LOGREG_MULTICLASS (module docstring)."""
    import inspect

    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import KFold
    from sklearn.multiclass import OneVsRestClassifier

    params = inspect.signature(LogisticRegressionCV).parameters
    kwargs: dict[str, object] = {"scoring": "accuracy"}  # what scoring=None means (accuracy) in every version
    if "l1_ratios" in params and params["l1_ratios"].default == "warn":
        kwargs["l1_ratios"] = (0.0,)  # pure L2, the only penalty the library's default had
    if "use_legacy_attributes" in params:
        kwargs["use_legacy_attributes"] = False  # fitted attributes only; predictions are unaffected
    model = LogisticRegressionCV(Cs=LOGREG_CS, cv=KFold(n_splits=LOGREG_FOLDS), **kwargs)
    return OneVsRestClassifier(model) if LOGREG_MULTICLASS == "ovr" else model


def fit_predict(
    predictor: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    seed: int,
    n_threads: int | None = None,
) -> tuple[float, float]:
    """(train accuracy, test accuracy) of one factor's predictor; x (n, d) / (M, d), y (n,) / (M,) ints.

    n_threads caps the GBT's threads (None: `gbt.default_threads()`)."""
    if predictor == "gbt":  # the same per-factor GBT as DCI (single-class rule included)
        from workers.metrics.dci import fit_factor

        _, train_acc, test_acc = fit_factor(x_train, y_train, x_test, y_test, seed, n_threads)
        return train_acc, test_acc
    if np.unique(y_train).size < 2:  # logistic regression does not fit one class; predict it (module docstring)
        return 1.0, float(np.mean(y_test == y_train[0]))
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = _logreg_cv().fit(x_train, y_train)
    pred_train, pred_test = model.predict(x_train), model.predict(x_test)
    return float(np.mean(pred_train == y_train)), float(np.mean(pred_test == y_test))


def _classes(factors: np.ndarray, name: str) -> np.ndarray:
    if not np.all(factors == np.round(factors)):
        raise ValueError(f"{name} must be discrete class indices (integer-valued); bin continuous factors first")
    return factors.astype(np.int64)


def downstream_scores(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    *,
    predictor: Literal["logreg", "gbt"],
    sizes: tuple[int, ...] = DOWNSTREAM_SIZES,
    seed: int = 0,
    n_jobs: int = 1,
) -> dict[str, float | None]:
    """Downstream accuracies from a train pool (N, d)/(N, K) and a test set (M, d)/(M, K) of codes/factors.

    Factors are class indices (integer-valued). For each n in sizes, n rows of the pool are drawn without
    replacement (seeded by (seed, n)) and one predictor per factor is fit on them (module docstring).
    Returns {f"downstream_{predictor}_{n}_train", f"downstream_{predictor}_{n}_test"} for each n: mean over
    factors of the accuracy in [0, 1]; both None when n > N. n_jobs > 1 fits the (size, factor) problems
    in that many processes (each GBT then gets an equal share of `gbt.default_threads()`).
    """
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}")
    codes_train, factors_train = check_pair(codes_train, factors_train)
    codes_test, factors_test = check_pair(codes_test, factors_test)
    if codes_train.shape[1] != codes_test.shape[1] or factors_train.shape[1] != factors_test.shape[1]:
        raise ValueError("downstream: train and test codes/factors must have the same number of columns")
    y_train, y_test = _classes(factors_train, "factors_train"), _classes(factors_test, "factors_test")
    sizes = tuple(int(n) for n in sizes)
    if any(n < MIN_SIZE[predictor] for n in sizes):
        raise ValueError(f"{predictor} needs training sizes >= {MIN_SIZE[predictor]}, got {sizes}")

    N, K = y_train.shape
    fitted = [n for n in dict.fromkeys(sizes) if n <= N]
    rows = {n: np.random.default_rng([seed, n]).choice(N, size=n, replace=False) for n in fitted}
    problems = [(n, k) for n in fitted for k in range(K)]
    n_jobs = max(1, min(int(n_jobs), len(problems)))
    if n_jobs > 1 and predictor == "gbt":
        from workers.metrics.gbt import default_threads

        threads: int | None = max(1, default_threads() // n_jobs)
    else:
        threads = None
    args = [
        (predictor, codes_train[rows[n]], y_train[rows[n], k], codes_test, y_test[:, k], seed, threads)
        for n, k in problems
    ]
    if n_jobs > 1:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs)(delayed(fit_predict)(*a) for a in args)
    else:
        results = [fit_predict(*a) for a in args]

    acc = dict(zip(problems, results, strict=True))
    out: dict[str, float | None] = {}
    for n in sizes:
        train = test = None
        if n in rows:
            train = float(np.mean([acc[n, k][0] for k in range(K)]))
            test = float(np.mean([acc[n, k][1] for k in range(K)]))
        out[f"downstream_{predictor}_{n}_train"] = train
        out[f"downstream_{predictor}_{n}_test"] = test
    return out
