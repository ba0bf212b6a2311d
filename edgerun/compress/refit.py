"""Closed-form recovery of accuracy from calibration data, no training framework.

A Linear layer's output is linear in its kept weights and, once the codes are
fixed, linear in its shared centroids.  So instead of Deep Compression's
fine-tuning, both are refit by least squares against the layer's ORIGINAL float
outputs on the calibration inputs.  The inputs given are the compressed model's
own activations (error feedback, as in OBC/GPTQ), so each layer also corrects
the error of the layers before it.

Ridge regularisation pulls towards the current weights (not towards zero), so
an under-determined row (support larger than the sample count) stays where it was.
"""
import numpy as np

RIDGE = 1e-3  # relative to the mean diagonal of the Gram matrix
CENTROID_SAMPLES = 1024


def relu_active(x, target, weight, bias):
    """bool [n, rows]: samples where the target or the current output is > 0, i.e. where
    a following ReLU does not zero both (elsewhere the output error costs nothing)."""
    prediction = np.asarray(x, np.float64) @ np.asarray(weight, np.float64).T + bias
    return (np.asarray(target) > 0) | (prediction > 0)


def _gram(x):
    x = np.asarray(x, dtype=np.float64)
    ones = np.ones((x.shape[0], 1))
    xa = np.hstack([x, ones])
    return xa, xa.T @ xa


def refit_rows(x, target, mask, weight, bias, ridge=RIDGE, relu=False, fit_bias=True):
    """Least squares per output row on its support, bias included.

    x [n, cols] layer inputs, target [n, rows] wanted pre-activation outputs,
    mask bool [rows, cols] (kept weights), weight/bias the current values.
    relu=True: the layer's output goes through a ReLU, so samples where both the
    target and the current prediction are <= 0 cost nothing after it; each row is
    fit only on the samples where either is positive (one active-set step).
    fit_bias=False keeps the bias at zero (a layer without one).
    Returns (weight float32 [rows, cols] zero off the mask, bias float32 [rows]).
    """
    rows, cols = mask.shape
    xa, gram = _gram(x)
    target = np.asarray(target, dtype=np.float64)
    rhs = xa.T @ target                                         # [cols + 1, rows]
    lam = ridge * max(float(np.trace(gram)) / gram.shape[0], 1e-12)
    start = np.hstack([np.asarray(weight, np.float64), np.asarray(bias, np.float64)[:, None]])
    if relu:
        active = relu_active(x, target, np.where(mask, weight, 0), bias)
    new = np.zeros((rows, cols + 1))
    for i in range(rows):
        support = np.flatnonzero(mask[i])
        if fit_bias:
            support = np.append(support, cols)
        if support.size == 0:
            continue
        if relu and active[:, i].sum() > support.size and not active[:, i].all():
            xs = xa[:, support][active[:, i]]
            g, r = xs.T @ xs, xs.T @ target[active[:, i], i]
        else:
            g, r = gram[np.ix_(support, support)], rhs[support, i]
        g = g + lam * np.eye(support.size)
        new[i, support] = np.linalg.solve(g, r + lam * start[i, support])
    return new[:, :cols].astype(np.float32), new[:, cols].astype(np.float32)


def _code_gram(codes, x, k):
    """A^T A of the centroid design, row by row: A_i = x summed over the columns that
    share each code (sorted, reduceat), then A_i^T A_i by BLAS.  The cost is
    samples * (cols + distinct_codes^2) per row, linear in the layer's width."""
    ata = np.zeros((k, k))
    for row in codes:
        kept = np.flatnonzero(row >= 0)
        if kept.size == 0:
            continue
        kept = kept[np.argsort(row[kept], kind="stable")]
        labels, starts = np.unique(row[kept], return_index=True)
        a = np.add.reduceat(x[:, kept], starts, axis=1)
        ata[np.ix_(labels, labels)] += a.T @ a
    return ata


def refit_centroids(x, target, codes, centroids, bias, fixed=None, ridge=RIDGE, rounds=2):
    """Least squares on the shared centroids with the codes fixed, then the bias.

    codes int [rows, cols] with -1 where the weight is pruned (exactly zero);
    fixed: index of a centroid that must not move (the pinned zero), or None.
    The design matrix [samples * rows, k] is never held whole: its normal equations
    are summed row by row (_code_gram), on at most CENTROID_SAMPLES evenly spaced
    samples, scaled up to the full set (k unknowns need far fewer equations).
    Returns (centroids float64 [k], bias float32 [rows]).
    """
    x = np.asarray(x, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    k = centroids.size
    valid = codes >= 0
    flat_codes = codes[valid]
    centroids = np.asarray(centroids, dtype=np.float64).copy()
    bias = np.asarray(bias, dtype=np.float64).copy()
    step = -(-x.shape[0] // CENTROID_SAMPLES)
    ata = _code_gram(codes, x[::step], k) * (x.shape[0] / x[::step].shape[0])
    free = np.array([c for c in range(k) if c != fixed and ata[c, c] > 0], dtype=np.intp)
    lam = ridge * max(float(np.trace(ata)) / max(k, 1), 1e-12)
    for _ in range(rounds):
        residual_target = (target - bias[None, :]).T @ x        # [rows, cols]
        aty = np.bincount(flat_codes, weights=residual_target[valid], minlength=k)
        if free.size:
            # fixed centroids (and empty ones) move to the right-hand side
            rest = np.setdiff1d(np.arange(k), free)
            b = aty[free] - ata[np.ix_(free, rest)] @ centroids[rest]
            g = ata[np.ix_(free, free)] + lam * np.eye(free.size)
            centroids[free] = np.linalg.solve(g, b + lam * centroids[free])
        weight = np.where(valid, centroids[np.maximum(codes, 0)], 0.0)
        bias = (target - x @ weight.T).mean(axis=0)
    return centroids, bias.astype(np.float32)


def assign_with_feedback(x, mask, weight, bias, centroids, fit_bias=True, ridge=RIDGE,
                         active=None):
    """Choose each kept weight's centroid one at a time, pushing its rounding error onto
    the row's weights not yet chosen (and the bias), so the row's OUTPUT on x moves
    as little as possible: the GPTQ/OBQ update (Frantar et al. 2022) on a codebook.

    Per row on its support: H = [x 1]^T [x 1] + ridge; with U the upper Cholesky
    factor of H^-1, choosing q for weight j adds -(w_j - q) / U_jj * U_j,k to each
    later k.  active bool [n, rows] (optional): the samples that matter to each row
    (those a ReLU does not zero on both sides, see refit_rows); H is built on them.
    Returns (codes int64 [rows, cols] with -1 off the mask, bias float32).
    """
    rows, cols = mask.shape
    xa, gram = _gram(x)
    lam = ridge * max(float(np.trace(gram)) / gram.shape[0], 1e-12)
    centroids = np.asarray(centroids, dtype=np.float64)
    by_value = np.argsort(centroids, kind="stable")  # nearest by searchsorted needs order
    centroids = centroids[by_value]
    midpoints = (centroids[1:] + centroids[:-1]) / 2
    codes = np.full((rows, cols), -1, dtype=np.int64)
    bias = np.asarray(bias, dtype=np.float64).copy()
    for i in range(rows):
        kept = np.flatnonzero(mask[i])
        if kept.size == 0:
            continue
        support = np.append(kept, cols) if fit_bias else kept
        if active is not None and active[:, i].sum() > support.size and not active[:, i].all():
            xs = xa[:, support][active[:, i]]
            h = xs.T @ xs + lam * np.eye(support.size)
        else:
            h = gram[np.ix_(support, support)] + lam * np.eye(support.size)
        try:
            upper = np.linalg.cholesky(np.linalg.inv(h)).T
        except np.linalg.LinAlgError:
            upper = np.diag(1 / np.sqrt(np.diag(h)))  # plain rounding if H is unusable
        w = np.append(np.asarray(weight[i, kept], np.float64), bias[i]) if fit_bias else \
            np.asarray(weight[i, kept], np.float64).copy()
        row_codes = np.empty(kept.size, dtype=np.int64)
        for j in range(kept.size):
            c = int(np.searchsorted(midpoints, w[j]))
            row_codes[j] = c
            error = (w[j] - centroids[c]) / upper[j, j]
            w[j + 1:] -= error * upper[j, j + 1:]
            w[j] = centroids[c]
        codes[i, kept] = by_value[row_codes]
        if fit_bias:
            bias[i] = w[-1]
    return codes, bias.astype(np.float32)
