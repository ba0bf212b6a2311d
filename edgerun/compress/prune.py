"""Pruning: which weights to keep, and which whole neurons to drop.

Scores are |w| (magnitude pruning, Han et al. 2015), or |w| * ||x_j|| when
calibration inputs are known (Wanda, Sun et al. 2023): a small weight on an input
that is always large matters more than a large weight on an input that is always
zero.  Masks are boolean [out, in], True = kept.
"""
import numpy as np


def scores(weight, inputs=None):
    """|w|, or |w| * (L2 norm of input column j over the calibration samples)."""
    score = np.abs(np.asarray(weight, dtype=np.float64))
    if inputs is not None:
        score = score * np.sqrt((np.asarray(inputs, dtype=np.float64) ** 2).sum(axis=0))[None, :]
    return score


def mask_by_count(score, pruned):
    """Keep all but the `pruned` lowest scores (ties broken by position, stable)."""
    flat = score.ravel()
    pruned = int(min(max(pruned, 0), flat.size))
    keep = np.ones(flat.size, dtype=bool)
    if pruned:
        keep[np.argsort(flat, kind="stable")[:pruned]] = False
    return keep.reshape(score.shape)


def mask_by_threshold(weight, threshold):
    """Keep |w| > threshold (a threshold on the weights themselves, not on scores)."""
    return np.abs(weight) > threshold


def global_counts(layer_scores, sparsity):
    """One ranking over all layers: {layer: how many of its weights to prune}.

    The whole model reaches round(sparsity * total) pruned weights; each layer gets
    the share of the globally lowest scores that falls into it.
    """
    names = list(layer_scores)
    flat = np.concatenate([layer_scores[n].ravel() for n in names])
    owner = np.concatenate([np.full(layer_scores[n].size, i) for i, n in enumerate(names)])
    pruned = int(round(sparsity * flat.size))
    lowest = owner[np.argsort(flat, kind="stable")[:pruned]]
    counts = np.bincount(lowest, minlength=len(names))
    return {n: int(counts[i]) for i, n in enumerate(names)}


def dead_neurons(pre_activation):
    """bool [out]: neurons whose pre-ReLU output is <= 0 on every calibration sample,
    so their post-ReLU output is always exactly zero there."""
    return (np.asarray(pre_activation) <= 0).all(axis=0)
