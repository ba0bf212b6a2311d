"""Weight sharing: 1-D k-means per layer (Deep Compression, Han et al. 2016).

Centroids start LINEARLY spaced over [min, max]: the initialisation Deep
Compression found best, because it keeps centroids on the rare large weights
that matter most (density-based starts crowd them all near zero).  Lloyd steps
are vectorised: with sorted centroids, the nearest one is found by searchsorted
on the midpoints between neighbours.
"""
import numpy as np


def assign(values, centroids):
    """Index of the nearest of the sorted centroids for each value."""
    centroids = np.asarray(centroids)
    if centroids.size == 1:
        return np.zeros(np.shape(values), dtype=np.intp)
    midpoints = (centroids[1:] + centroids[:-1]) / 2
    return np.searchsorted(midpoints, values)


def kmeans_1d(values, k, weights=None, iterations=25, fixed_zero=False):
    """Cluster values into k centroids -> (centroids float64 [k] sorted, codes [n]).

    weights (>= 0, per value) make the Lloyd means weighted, e.g. by the energy of the
    input each weight multiplies.  fixed_zero keeps one centroid pinned at exactly 0
    (for a pruned matrix stored as a dense codebook); it is the one closest to 0 after
    the linear start.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    weights = np.ones_like(values) if weights is None else np.asarray(weights, np.float64).ravel()
    if values.size == 0:
        return np.zeros(k), np.zeros(0, dtype=np.intp)
    low, high = float(values.min()), float(values.max())
    if fixed_zero:
        low, high = min(low, 0.0), max(high, 0.0)
    centroids = np.linspace(low, high, k)
    zero_at = None
    if fixed_zero:
        zero_at = int(np.argmin(np.abs(centroids)))
        centroids[zero_at] = 0.0
    for _ in range(iterations):
        codes = assign(values, centroids)
        mass = np.bincount(codes, weights=weights, minlength=k)
        total = np.bincount(codes, weights=weights * values, minlength=k)
        # An empty cluster keeps its centroid: it still costs nothing to store.
        updated = np.where(mass > 0, total / np.where(mass > 0, mass, 1), centroids)
        if zero_at is not None:
            updated[zero_at] = 0.0
        order = np.argsort(updated, kind="stable")
        updated = updated[order]
        if zero_at is not None:
            zero_at = int(np.flatnonzero(order == zero_at)[0])
        if np.allclose(updated, centroids, rtol=0, atol=1e-12):
            centroids = updated
            break
        centroids = updated
    return centroids, assign(values, centroids)
