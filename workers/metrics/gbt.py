"""scikit-learn's default `GradientBoostingClassifier`, reimplemented exactly and fast (numba), for DCI.

`fit_gbt_classifier(x, y, [x_eval...], seed=s)` returns what `GradientBoostingClassifier(random_state=s)
.fit(x, y)` gives as `feature_importances_` and `predict(x_eval)` (scikit-learn 1.9.1's defaults: 100
stages, learning rate 0.1, depth 3). Every floating-point operation of sklearn's fit is replayed, ties and
its feature-visiting order included, except that exactly tied values in nodes of more than
`SORT_REPLAY_MAX` samples are summed in a stable order (last-bit differences). Each feature is sorted once
and partitioned stably per split (O(depth · d · N) per tree); a stage's trees are fitted by `n_threads`
GIL-free numba threads (see `default_threads`). The kernels compile on first use and are cached next to
this file. docs/gbt.md has the full account: what is reproduced, the measured agreement, the speed-ups.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit
from scipy.special import logit
from scipy.stats import gmean

N_ESTIMATORS = 100
LEARNING_RATE = 0.1
MAX_DEPTH = 3
FEATURE_THRESHOLD = np.float32(1e-7)  # sklearn: `cdef const float32_t FEATURE_THRESHOLD = 1e-7`
EPSILON = float(np.finfo(np.float64).eps)  # sklearn's tree EPSILON (impurity ~ 0, improvement ~ 0)
RAND_R_MAX = 2147483647  # sklearn.utils._random.RAND_R_MAX
SORT_REPLAY_MAX = 2048  # largest node in which sklearn's sort of exactly tied values is replayed


# ---- helpers mirroring sklearn's C code ---------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def _rand_int(low: int, high: int, state: np.ndarray) -> int:
    """sklearn `rand_int(low, high, &state)`: low + our_rand_r(state) % (high − low); state (1,) int64."""
    s = state[0]
    if s == 0:  # our_rand_r: the seed must never be 0
        s = 1
    # 32-bit XorShift; held in int64 and masked, so no unsigned-overflow semantics are needed
    s ^= (s << 13) & 0xFFFFFFFF
    s ^= s >> 17
    s ^= (s << 5) & 0xFFFFFFFF
    state[0] = s
    return low + (s % (RAND_R_MAX + 1)) % (high - low)


@njit(cache=True, nogil=True)
def _pairwise_sum(a: np.ndarray, lo: int, n: int) -> float:
    """numpy's pairwise summation of a[lo:lo+n] (float64 `add.reduce`), bit for bit."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    if n <= 128:  # numpy PW_BLOCKSIZE: 8 interleaved accumulators
        r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
        r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
        i = 8
        m = n - (n % 8)
        while i < m:
            j = lo + i
            r0 += a[j]
            r1 += a[j + 1]
            r2 += a[j + 2]
            r3 += a[j + 3]
            r4 += a[j + 4]
            r5 += a[j + 5]
            r6 += a[j + 6]
            r7 += a[j + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += a[lo + i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(a, lo, n2) + _pairwise_sum(a, lo + n2, n - n2)


@njit(cache=True, nogil=True)
def _negative_gradient(y: np.ndarray, raw: np.ndarray, neg: np.ndarray, lo: int, hi: int) -> None:
    """neg[:, lo:hi] = −gradient at raw[:, lo:hi] (T, ·) of HalfBinomialLoss (T = 1; y 0/1) or
    HalfMultinomialLoss (T = K; y class index), with the formulas of sklearn's Cython losses."""
    n_trees = raw.shape[0]
    for i in range(lo, hi):
        if n_trees == 1:
            r = raw[0, i]
            if r > -37.0:  # cgradient_half_binomial's branch
                e = np.exp(-r)
                neg[0, i] = -(((1.0 - y[i]) - y[i] * e) / (1.0 + e))
            else:
                neg[0, i] = -(np.exp(r) - y[i])
        else:
            m = raw[0, i]  # sum_exp_minus_max
            for k in range(1, n_trees):
                if m < raw[k, i]:
                    m = raw[k, i]
            s = 0.0
            for k in range(n_trees):
                e = np.exp(raw[k, i] - m)
                neg[k, i] = e
                s += e
            for k in range(n_trees):
                p = neg[k, i] / s
                neg[k, i] = -(p - (1.0 if y[i] == k else 0.0))


# ---- sklearn's sort (utils/_sorting.pyx: introsort, 3-way partition), to reproduce its order of ties ----


@njit(cache=True, nogil=True, inline="always")
def _swap(v: np.ndarray, idx: np.ndarray, i: int, j: int) -> None:
    t = v[i]
    v[i] = v[j]
    v[j] = t
    u = idx[i]
    idx[i] = idx[j]
    idx[j] = u


@njit(cache=True, nogil=True)
def _insertion_sort(v: np.ndarray, idx: np.ndarray, lo: int, n: int) -> None:
    for i in range(1, n):
        tv = v[lo + i]
        ti = idx[lo + i]
        j = i
        while j > 0 and v[lo + j - 1] > tv:
            v[lo + j] = v[lo + j - 1]
            idx[lo + j] = idx[lo + j - 1]
            j -= 1
        v[lo + j] = tv
        idx[lo + j] = ti


@njit(cache=True, nogil=True)
def _heapsort(v: np.ndarray, idx: np.ndarray, lo: int, n: int) -> None:
    start = (n - 2) // 2  # n > 15 here, so C's truncating division agrees
    end = n
    while True:
        _sift_down(v, idx, lo, start, end)
        if start == 0:
            break
        start -= 1
    end = n - 1
    while end > 0:
        _swap(v, idx, lo, lo + end)
        _sift_down(v, idx, lo, 0, end)
        end -= 1


@njit(cache=True, nogil=True)
def _sift_down(v: np.ndarray, idx: np.ndarray, lo: int, start: int, end: int) -> None:
    root = start
    while True:
        child = root * 2 + 1
        maxind = root
        if child < end and v[lo + maxind] < v[lo + child]:
            maxind = child
        if child + 1 < end and v[lo + maxind] < v[lo + child + 1]:
            maxind = child + 1
        if maxind == root:
            break
        _swap(v, idx, lo + root, lo + maxind)
        root = maxind


@njit(cache=True, nogil=True)
def _median3(v: np.ndarray, lo: int, n: int):
    a = v[lo]
    b = v[lo + n // 2]
    c = v[lo + n - 1]
    if a < b:
        if b < c:
            return b
        elif a < c:
            return c
        return a
    elif b < c:
        if a < c:
            return a
        return c
    return b


@njit(cache=True, nogil=True)
def _introsort3(v: np.ndarray, idx: np.ndarray, lo: int, n: int, maxd: int) -> None:
    while n > 15:
        if maxd <= 0:  # "gone quadratic"
            _heapsort(v, idx, lo, n)
            return
        maxd -= 1
        pivot = _median3(v, lo, n)
        i = 0
        left = 0
        r = n
        while i < r:
            if v[lo + i] < pivot:
                _swap(v, idx, lo + i, lo + left)
                i += 1
                left += 1
            elif v[lo + i] > pivot:
                r -= 1
                _swap(v, idx, lo + i, lo + r)
            else:
                i += 1
        _introsort3(v, idx, lo, left, maxd)
        lo += r
        n -= r
    _insertion_sort(v, idx, lo, n)


@njit(cache=True, nogil=True)
def simultaneous_sort(v: np.ndarray, idx: np.ndarray, lo: int, n: int) -> None:
    """sklearn `simultaneous_sort(&v[lo], &idx[lo], n, use_three_way_partition=True)`, same swaps."""
    if n == 0:
        return
    _introsort3(v, idx, lo, n, 2 * int(np.log2(n)))


# ---- one regression tree -------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _sweep(xv, rows, yv, order, start, end, sum_total, w_node, inv, best, stop_at_tie):
    """Evaluate every split position of one feature (sklearn's `node_split_best` inner loop).

    The node's samples in the feature's sorted order are order[start:end] (values xv[order[p]] when rows
    is True, else xv[p] directly). best = [proxy, position, threshold] is improved in place (strict >).
    Returns whether two samples have exactly equal values; with stop_at_tie it stops at the first."""
    # `acc` is sklearn's sum_left after its forward updates from `pos` (its criterion.update rule)
    acc = 0.0
    pos = start
    x_prev = xv[order[start]] if rows else xv[start]
    best_proxy = best[0]
    # the proxy needs two divisions; a bound from reciprocals (error < 1e-15 relative, the proxy is ≥ 0)
    # skips the exact evaluation of candidates that cannot beat the best, and leaves the result unchanged
    cutoff = best_proxy * (1.0 - 1e-12)
    tie = False
    for p in range(start + 1, end):
        acc += yv[order[p - 1]]
        x = xv[order[p]] if rows else xv[p]
        if x <= np.float32(x_prev + FEATURE_THRESHOLD):  # within FEATURE_THRESHOLD: no split here
            if x == x_prev:
                tie = True
                if stop_at_tie:
                    return True
            x_prev = x
            continue
        if (p - pos) > (end - p):  # sklearn's update(): cheaper from the end -> reverse_reset
            acc = sum_total
            for q in range(end - 1, p - 1, -1):
                acc -= yv[order[q]]
        pos = p
        sum_right = sum_total - acc
        if acc * acc * inv[p - start] + sum_right * sum_right * inv[end - p] > cutoff:
            w_left = float(p - start)
            proxy = acc * acc / w_left + sum_right * sum_right / (w_node - w_left)
            if proxy > best_proxy:
                best_proxy = proxy
                cutoff = best_proxy * (1.0 - 1e-12)
                best[0] = proxy
                best[1] = p
                best[2] = np.float64(x_prev) / 2.0 + np.float64(x) / 2.0
        x_prev = x
    return tie


@njit(cache=True, nogil=True)
def _node_split(xt, src, start, end, y, sum_total, w_node, features, constant_features, n_known, state,
                samples, fv, inv, replay_max):
    """sklearn `node_split_best` on the node samples[start:end].

    src[f, start:end] holds the node's samples in stable sorted order of feature f. samples[start:end]
    is sklearn's sample order on entry and is left as sklearn leaves it: sorted by the last feature
    sklearn sorted (sklearn sorts the same array feature after feature). With distinct values a sorted
    order is unique; where a feature has exactly equal values, sklearn's introsort is replayed (nodes of
    ≤ replay_max samples) so that sums run in sklearn's order. Returns (feature, position (end: none),
    threshold, n_total_constants); features / constant_features are the splitter's arrays."""
    d = xt.shape[0]
    n = end - start
    best = np.empty(3)
    best[0] = -np.inf
    best[1] = end
    best[2] = 0.0
    best_feature = -1
    current = -1  # the current sklearn order: row `current` of src, or samples itself when −1
    f_i = d
    n_visited = 0
    n_found = 0
    n_drawn = 0
    n_total = n_known
    while f_i > n_total and (n_visited < d or n_visited <= n_found + n_drawn):
        n_visited += 1
        f_j = _rand_int(n_drawn, f_i - n_found, state)
        if f_j < n_known:  # a feature known constant from an ancestor: skipped, but the draw counts
            tmp = features[n_drawn]
            features[n_drawn] = features[f_j]
            features[f_j] = tmp
            n_drawn += 1
            continue
        f_j += n_found
        f = features[f_j]
        row = src[f]
        xf = xt[f]
        x_first = xf[row[start]]
        x_last = xf[row[end - 1]]
        constant = x_last <= np.float32(x_first + FEATURE_THRESHOLD)
        if constant and x_last == x_first:
            tie = False  # all equal: sklearn's sort leaves the order unchanged
        elif constant:
            tie = False
            for p in range(start + 1, end):
                if xf[row[p]] == xf[row[p - 1]]:
                    tie = True
                    break
            if not tie or n > replay_max:
                current = f
        else:
            f_i -= 1
            tmp = features[f_i]
            features[f_i] = features[f_j]
            features[f_j] = tmp
            saved0, saved1, saved2 = best[0], best[1], best[2]
            tie = _sweep(xf, True, y, row, start, end, sum_total, w_node, inv, best, n <= replay_max)
            if tie and n <= replay_max:
                best[0], best[1], best[2] = saved0, saved1, saved2
            else:
                current = f
                if best[0] != saved0:
                    best_feature = f
                tie = False
        if tie and n <= replay_max:  # replay sklearn's sort of this feature on its current order
            if current >= 0:
                cur = src[current]
                for p in range(start, end):
                    samples[p] = cur[p]
                current = -1
            for p in range(start, end):
                fv[p] = xf[samples[p]]
            simultaneous_sort(fv, samples, start, n)
            if not constant:
                saved0 = best[0]
                _sweep(fv, False, y, samples, start, end, sum_total, w_node, inv, best, False)
                if best[0] != saved0:
                    best_feature = f
        if constant:
            tmp = features[f_j]
            features[f_j] = features[n_total]
            features[n_total] = tmp
            n_found += 1
            n_total += 1

    if current >= 0:  # materialise sklearn's final order (the partition and the children depend on it)
        cur = src[current]
        for p in range(start, end):
            samples[p] = cur[p]
    # restore the known constants, record the new ones (sklearn's memcpy pair)
    for j in range(n_known):
        features[j] = constant_features[j]
    for j in range(n_known, n_known + n_found):
        constant_features[j] = features[j]
    return best_feature, int(best[1]), best[2], n_total


@njit(cache=True, nogil=True)
def _partition_rows(src, dst, start, end, samples, pos, mark, tmp) -> None:
    """Stable partition of every feature's sorted segment: samples[start:pos] left, the rest right.

    src is either dst (in place, through tmp) or the presorted root order (copied into dst)."""
    for p in range(start, pos):
        mark[samples[p]] = 1
    for p in range(pos, end):
        mark[samples[p]] = 0
    for f in range(src.shape[0]):
        row_in = src[f]
        row_out = dst[f]
        left = start
        n_right = 0
        for p in range(start, end):  # branch-free: the side is a coin flip, a branch would mispredict
            s = row_in[p]
            m = mark[s]
            row_out[left] = s
            tmp[n_right] = s
            left += m
            n_right += 1 - m
        for j in range(n_right):
            row_out[left + j] = tmp[j]


@njit(cache=True, nogil=True)
def _fit_tree(xt, presort, y, y_true, seed, max_depth, hess_factor, inv, replay_max, work, samples, fv, tmp, mark,
              leaf_of, gbuf, hbuf, out_feature, out_threshold, out_left, out_right, out_value, out_imp):
    """Fit one regression tree on targets y (N,) = negative gradient and replace its leaf values by the
    Newton step. Writes the node arrays (max_nodes,), the unnormalised importances out_imp (d,) and
    leaf_of (N,) (leaf of each training sample); returns the node count."""
    d, n = xt.shape
    max_nodes = out_feature.shape[0]
    w_total = float(n)
    state = np.empty(1, np.int64)
    state[0] = seed
    features = np.arange(d)
    constant_features = np.empty(d, np.int64)
    node_impurity = np.zeros(max_nodes)
    node_w = np.zeros(max_nodes)
    node_start = np.zeros(max_nodes, np.int64)
    node_end = np.zeros(max_nodes, np.int64)
    for i in range(n):  # Splitter.init: all samples (unit weights), in index order
        samples[i] = i
    # depth-first stack (sklearn: push right, then left)
    st_start = np.empty(max_nodes, np.int64)
    st_end = np.empty(max_nodes, np.int64)
    st_depth = np.empty(max_nodes, np.int64)
    st_parent = np.empty(max_nodes, np.int64)
    st_left = np.empty(max_nodes, np.bool_)
    st_imp = np.empty(max_nodes, np.float64)
    st_nconst = np.empty(max_nodes, np.int64)
    st_start[0] = 0
    st_end[0] = n
    st_depth[0] = 0
    st_parent[0] = -1
    st_left[0] = False
    st_imp[0] = np.inf
    st_nconst[0] = 0
    top = 1
    node_count = 0
    for j in range(max_nodes):
        out_feature[j] = -1
        out_left[j] = -1
        out_right[j] = -1
        out_threshold[j] = -2.0
        out_value[j] = 0.0
    while top > 0:
        top -= 1
        start, end, depth = st_start[top], st_end[top], st_depth[top]
        parent, is_left, impurity, n_known = st_parent[top], st_left[top], st_imp[top], st_nconst[top]
        n_node = end - start
        w_node = float(n_node)
        src = presort if depth == 0 else work
        is_leaf = depth >= max_depth or n_node < 2
        sum_total = 0.0
        sq_total = 0.0
        if not is_leaf or node_count == 0:  # criterion.init, in sklearn's sample order (w·y = y)
            for p in range(start, end):
                v = y[samples[p]]
                sum_total += v
                sq_total += v * v
        if node_count == 0:
            impurity = sq_total / w_node - (sum_total / w_node) ** 2.0
        is_leaf = is_leaf or impurity <= EPSILON
        best_pos = end
        n_total_const = n_known
        imp_left = imp_right = 0.0
        best_feature, best_threshold = -1, 0.0
        if not is_leaf:
            best_feature, best_pos, best_threshold, n_total_const = _node_split(
                xt, src, start, end, y, sum_total, w_node, features, constant_features, n_known, state,
                samples, fv, inv, replay_max,
            )
            if best_pos < end:
                # partition_samples_final: in-place swaps by threshold, in sklearn's sample order
                ps, pe = start, end
                xb = xt[best_feature]
                while ps < pe:  # branch-free form of: left ? ps += 1 : (pe -= 1, swap(ps, pe))
                    s_ps = samples[ps]
                    s_pe = samples[pe - 1]
                    go_left = xb[s_ps] <= best_threshold
                    samples[ps] = s_ps if go_left else s_pe
                    samples[pe - 1] = s_pe if go_left else s_ps
                    ps += go_left
                    pe -= 1 - go_left
                # children impurities: criterion.reset(), update(best_pos), children_impurity()
                if (best_pos - start) <= (end - best_pos):
                    sum_left = 0.0
                    for p in range(start, best_pos):
                        sum_left += y[samples[p]]
                else:
                    sum_left = sum_total
                    for p in range(end - 1, best_pos - 1, -1):
                        sum_left -= y[samples[p]]
                sq_left = 0.0
                for p in range(start, best_pos):
                    v = y[samples[p]]
                    sq_left += v * v
                w_l = float(best_pos - start)
                w_r = w_node - w_l
                sum_right = sum_total - sum_left
                imp_left = sq_left / w_l - (sum_left / w_l) ** 2.0
                imp_right = (sq_total - sq_left) / w_r - (sum_right / w_r) ** 2.0
                improvement = (w_node / w_total) * (impurity - (w_r / w_node * imp_right) - (w_l / w_node * imp_left))
                is_leaf = improvement + EPSILON < 0.0
            else:
                is_leaf = True
        node_id = node_count
        node_count += 1
        if parent >= 0:
            if is_left:
                out_left[parent] = node_id
            else:
                out_right[parent] = node_id
        node_impurity[node_id] = impurity
        node_w[node_id] = w_node
        node_start[node_id] = start
        node_end[node_id] = end
        if not is_leaf:
            out_feature[node_id] = best_feature
            out_threshold[node_id] = best_threshold
            if depth + 1 < max_depth:  # the children split again: every feature's sorted segment follows
                _partition_rows(src, work, start, end, samples, best_pos, mark, tmp)
            for side in range(2):  # right first, then left: left is popped (numbered) first
                st_start[top] = best_pos if side == 0 else start
                st_end[top] = end if side == 0 else best_pos
                st_depth[top] = depth + 1
                st_parent[top] = node_id
                st_left[top] = side == 1
                st_imp[top] = imp_right if side == 0 else imp_left
                st_nconst[top] = n_total_const
                top += 1

    # importances (compute_feature_importances, normalize=False)
    for f in range(d):
        out_imp[f] = 0.0
    for j in range(node_count):
        if out_left[j] != -1:
            left, right = out_left[j], out_right[j]
            out_imp[out_feature[j]] += (
                node_w[j] * node_impurity[j] - node_w[left] * node_impurity[left] - node_w[right] * node_impurity[right]
            )
    for f in range(d):
        out_imp[f] /= node_w[0]

    # leaf membership, then the Newton step per leaf over its samples in increasing index order
    counts = np.zeros(node_count + 1, np.int64)
    for j in range(node_count):
        if out_left[j] == -1:
            for p in range(node_start[j], node_end[j]):
                leaf_of[samples[p]] = j
            counts[j + 1] = node_end[j] - node_start[j]
    for j in range(node_count):
        counts[j + 1] += counts[j]
    fill = counts.copy()
    for i in range(n):  # counting sort by leaf keeps the samples of each leaf in index order
        j = leaf_of[i]
        q = fill[j]
        fill[j] += 1
        g = y[i]
        prob = y_true[i] - g  # sklearn: prob = y − neg_gradient
        gbuf[q] = g
        hbuf[q] = prob * (1.0 - prob)
    for j in range(node_count):
        if out_left[j] == -1:
            m = counts[j + 1] - counts[j]
            numerator = _pairwise_sum(gbuf, counts[j], m) / float(m)
            numerator *= hess_factor
            denominator = _pairwise_sum(hbuf, counts[j], m) / float(m)
            out_value[j] = 0.0 if abs(denominator) < 1e-150 else numerator / denominator  # _safe_divide
    return node_count


@njit(cache=True, nogil=True)
def _tree_task(xt, presort, neg, y_true, raw, seed, max_depth, hess_factor, inv, replay_max, learning_rate,
               work, samples, fv, tmp, mark, leaf_of, gbuf, hbuf,
               out_feature, out_threshold, out_left, out_right, out_value, out_imp):
    """One tree of a stage (targets neg (N,), Newton targets y_true (N,)) and raw (N,) += lr · its value."""
    count = _fit_tree(xt, presort, neg, y_true, seed, max_depth, hess_factor, inv, replay_max, work, samples,
                      fv, tmp, mark, leaf_of, gbuf, hbuf, out_feature, out_threshold, out_left, out_right,
                      out_value, out_imp)
    for i in range(raw.shape[0]):
        raw[i] += learning_rate * out_value[leaf_of[i]]
    return count


@njit(cache=True, nogil=True)
def _to_heap(t_feature, t_threshold, t_left, t_right, t_value, max_depth):
    """Trees as complete binary trees of depth max_depth in heap order (children of j: 2j+1, 2j+2).

    A leaf above max_depth becomes a split on feature 0 at +inf (x ≤ inf holds for every finite x, so
    the walk always goes left) over copies of itself: same predictions, and a walk without branches."""
    n_stages, n_trees, _ = t_feature.shape
    n_inner = 2**max_depth - 1
    h_feature = np.zeros((n_stages, n_trees, n_inner), np.int64)
    h_threshold = np.zeros((n_stages, n_trees, n_inner), np.float64)
    h_value = np.zeros((n_stages, n_trees, n_inner + 1), np.float64)
    node = np.zeros(2 * n_inner + 1, np.int64)
    for s in range(n_stages):
        for k in range(n_trees):
            node[0] = 0
            for j in range(n_inner):
                nd = node[j]
                if t_left[s, k, nd] == -1:
                    h_threshold[s, k, j] = np.inf
                    node[2 * j + 1] = nd
                    node[2 * j + 2] = nd
                else:
                    h_feature[s, k, j] = t_feature[s, k, nd]
                    h_threshold[s, k, j] = t_threshold[s, k, nd]
                    node[2 * j + 1] = t_left[s, k, nd]
                    node[2 * j + 2] = t_right[s, k, nd]
            for j in range(n_inner, 2 * n_inner + 1):
                h_value[s, k, j - n_inner] = t_value[s, k, node[j]]
    return h_feature, h_threshold, h_value


@njit(cache=True, nogil=True)
def _predict_raw(x, raw0, h_feature, h_threshold, h_value, learning_rate, max_depth, out, lo, hi):
    """out[lo:hi] = raw predictions (·, T) of x[lo:hi] (x (M, d) float32): init + Σ_stages lr · leaf value.

    The same additions in the same (stage) order as sklearn's predict_stages; samples are walked in
    blocks per tree so that the independent walks overlap."""
    n_stages, n_trees, n_inner = h_feature.shape
    block = 256
    for b0 in range(lo, hi, block):
        b1 = min(hi, b0 + block)
        for i in range(b0, b1):
            for k in range(n_trees):
                out[i, k] = raw0[k]
        for s in range(n_stages):
            for k in range(n_trees):
                hf = h_feature[s, k]
                ht = h_threshold[s, k]
                hv = h_value[s, k]
                for i in range(b0, b1):
                    j = 0
                    for _ in range(max_depth):  # right iff not (x <= threshold): x is finite
                        j = 2 * j + 1 + (x[i, hf[j]] > ht[j])
                    out[i, k] += learning_rate * hv[j - n_inner]


# ---- public API ----------------------------------------------------------------------------------------


def init_raw_predictions(y_enc: np.ndarray, n_classes: int) -> np.ndarray:
    """(T,) constant init raw prediction as sklearn's `_init_raw_predictions` with the prior
    `DummyClassifier` (T = 1 for binary, n_classes otherwise)."""
    prior = np.bincount(y_enc, minlength=n_classes)
    prior = prior / prior.sum()
    eps = np.finfo(np.float64).eps
    if n_classes == 2:
        return np.atleast_1d(logit(np.clip(prior[1:2], eps, 1 - eps, dtype=np.float64)))
    proba = np.clip(prior[None, :], eps, 1 - eps, dtype=np.float64)
    return np.log(proba / gmean(proba, axis=1)[:, None])[0]


def _as_float32(x: np.ndarray, name: str, d: int | None = None) -> np.ndarray:
    x32 = np.ascontiguousarray(np.asarray(x), dtype=np.float32)  # sklearn's DTYPE
    if x32.ndim != 2 or (d is not None and x32.shape[1] != d):
        raise ValueError(f"{name} must be a 2-d array{'' if d is None else f' with {d} columns'}, got {x32.shape}")
    if not np.all(np.isfinite(x32)):
        raise ValueError(f"{name} contains NaN or inf (or values beyond float32)")
    return x32


def default_threads() -> int:
    """Threads used when n_threads is None: OMP_NUM_THREADS if set (how Ray and batch schedulers announce a
    process's CPU budget), else every core this process may run on."""
    budget = os.environ.get("OMP_NUM_THREADS", "")
    if budget.strip().isdigit() and int(budget) > 0:
        return int(budget)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _blocks(n: int, parts: int) -> list[tuple[int, int]]:
    """[lo, hi) ranges cutting range(n) into at most `parts` near-equal pieces."""
    edges = np.linspace(0, n, min(parts, max(n, 1)) + 1).astype(np.int64)
    return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True) if hi > lo]


def fit_gbt_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_eval: Sequence[np.ndarray] = (),
    *,
    seed: int,
    n_threads: int | None = None,
    sort_replay_max: int = SORT_REPLAY_MAX,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """`GradientBoostingClassifier(random_state=seed).fit(x_train, y_train)`: importances and predictions.

    x_train (N, d) real, y_train (N,) labels (≥ 2 distinct values), x_eval: a sequence of (M_i, d) arrays.
    Returns (feature_importances_ (d,) float64 summing to 1 (zeros if no tree split), [predict(x) (M_i,)
    with y_train's labels, for x in x_eval]). n_threads: threads to use (default: `default_threads()`);
    sort_replay_max is the largest node in which sklearn's sort of tied values is replayed (module doc).
    """
    x32 = _as_float32(x_train, "x_train")
    y_train = np.asarray(y_train).reshape(-1)
    if y_train.shape[0] != x32.shape[0]:
        raise ValueError(f"x_train has {x32.shape[0]} rows but y_train {y_train.shape[0]}")
    classes, y_enc = np.unique(y_train, return_inverse=True)
    n_classes = classes.shape[0]
    if n_classes < 2:
        raise ValueError("y_train must contain at least 2 classes (as in sklearn)")
    evals = [_as_float32(x, "x_eval", x32.shape[1]) for x in x_eval]
    n, d = x32.shape
    n_trees = 1 if n_classes == 2 else n_classes  # HalfBinomialLoss: one tree per stage
    y_enc = y_enc.astype(np.int64)

    # one rand_r seed per tree, drawn from the estimator's RandomState in fitting order (Splitter.init)
    rs = np.random.RandomState(seed)
    seeds = np.array([rs.randint(0, RAND_R_MAX) for _ in range(N_ESTIMATORS * n_trees)], dtype=np.int64)
    seeds = seeds.reshape(N_ESTIMATORS, n_trees)

    xt = np.ascontiguousarray(x32.T)  # (d, N): one feature's values contiguous for the sweeps
    presort = np.ascontiguousarray(np.argsort(xt, axis=1, kind="stable").astype(np.int32))
    raw0 = init_raw_predictions(y_enc, n_classes)
    raw = np.ascontiguousarray(np.repeat(raw0[:, None], n, axis=1))  # (T, N)
    neg = np.empty((n_trees, n))
    y_true = (  # the 0/1 target of each tree's Newton step (sklearn's y_ in _update_terminal_regions)
        y_enc[None, :].astype(np.float64) if n_trees == 1 else (y_enc[None, :] == np.arange(n_trees)[:, None]) * 1.0
    )
    hess_factor = 1.0 if n_trees == 1 else (n_classes - 1) / n_classes  # (K − 1)/K of the multinomial step
    inv = np.r_[0.0, 1.0 / np.arange(1, n + 1)]
    max_nodes = 2 ** (MAX_DEPTH + 1) - 1
    t_feature = np.empty((N_ESTIMATORS, n_trees, max_nodes), np.int64)
    t_threshold = np.empty((N_ESTIMATORS, n_trees, max_nodes))
    t_left = np.empty((N_ESTIMATORS, n_trees, max_nodes), np.int64)
    t_right = np.empty((N_ESTIMATORS, n_trees, max_nodes), np.int64)
    t_value = np.empty((N_ESTIMATORS, n_trees, max_nodes))
    t_imp = np.empty((N_ESTIMATORS, n_trees, d))
    t_count = np.zeros((N_ESTIMATORS, n_trees), np.int64)

    threads = max(1, int(n_threads)) if n_threads is not None else default_threads()
    # work buffers, one set per concurrently running tree; a tree takes a set from the pool and returns it
    buffers: queue.SimpleQueue = queue.SimpleQueue()
    for _ in range(min(threads, n_trees)):
        buffers.put((np.empty((d, n), np.int32), np.empty(n, np.int32), np.empty(n, np.float32),
                     np.empty(n, np.int32), np.empty(n, np.uint8), np.empty(n, np.int64), np.empty(n), np.empty(n)))

    def fit_tree(stage: int, k: int) -> None:
        bufs = buffers.get()
        try:
            t_count[stage, k] = _tree_task(
                xt, presort, neg[k], y_true[k], raw[k], seeds[stage, k], MAX_DEPTH, hess_factor, inv,
                sort_replay_max, LEARNING_RATE, *bufs, t_feature[stage, k], t_threshold[stage, k],
                t_left[stage, k], t_right[stage, k], t_value[stage, k], t_imp[stage, k],
            )
        finally:
            buffers.put(bufs)

    # Threads, not numba's parallel loops: the kernels release the GIL, and an idle thread sleeps instead
    # of spinning at an OpenMP barrier (on the shared bench machine that spinning took the CPU the working
    # thread needed). Tasks (trees, blocks of samples) are handed out one at a time, the calling thread
    # takes them too, and it waits only for tasks another thread has started, so a helper the OS has not
    # scheduled yet holds nothing up. (On a fully loaded machine 2 threads were still slower: module doc.)
    pool = ThreadPoolExecutor(threads - 1) if threads > 1 else None

    def run(fn, args: list[tuple]) -> None:
        if pool is None:
            for a in args:
                fn(*a)
            return
        state = {"next": 0, "done": 0, "error": None}
        cond = threading.Condition()

        def work() -> None:
            while True:
                with cond:
                    i = state["next"]
                    if i >= len(args) or state["error"] is not None:
                        return
                    state["next"] = i + 1
                try:
                    fn(*args[i])
                except BaseException as e:  # re-raised by the calling thread
                    with cond:
                        state["error"] = e
                with cond:
                    state["done"] += 1
                    cond.notify_all()

        for _ in range(min(threads - 1, len(args) - 1)):
            pool.submit(work)
        work()
        with cond:
            cond.wait_for(lambda: state["done"] == state["next"])
        if state["error"] is not None:
            raise state["error"]

    try:
        grad_blocks = _blocks(n, threads)
        for stage in range(N_ESTIMATORS):
            run(lambda lo, hi: _negative_gradient(y_enc, raw, neg, lo, hi), grad_blocks)
            run(fit_tree, [(stage, k) for k in range(n_trees)])
        heap = _to_heap(t_feature, t_threshold, t_left, t_right, t_value, MAX_DEPTH)
        predictions = []
        for x in evals:
            r = np.empty((x.shape[0], n_trees))
            run(lambda lo, hi, x=x, r=r: _predict_raw(x, raw0, *heap, LEARNING_RATE, MAX_DEPTH, r, lo, hi),
                _blocks(x.shape[0], 4 * threads))
            encoded = (r[:, 0] >= 0).astype(np.int64) if n_trees == 1 else np.argmax(r, axis=1)
            predictions.append(classes[encoded])
    finally:
        if pool is not None:
            pool.shutdown()

    # feature_importances_: mean over the trees with more than one node, normalised (sklearn's numpy calls)
    relevant = [t_imp[s, k] for s in range(N_ESTIMATORS) for k in range(n_trees) if t_count[s, k] > 1]
    if not relevant:
        return np.zeros(d, dtype=np.float64), predictions
    avg = np.mean(relevant, axis=0, dtype=np.float64)
    return avg / np.sum(avg), predictions
