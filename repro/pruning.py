"""SNIP pruning at initialisation (Lee et al. 2019), as in the authors' code.

Connection sensitivity of every kernel and bias entry: |dL/dc| at c = 1 for w_eff = c * w,
with the gradient summed over one pass of the training split. dL/dc = w * dL/dw, and the sum of
per-batch mean gradients over batches of 100 equals (N / 100) x the mean gradient over the
split, so we accumulate the mean over large chunks: same scores up to float rounding and a
constant factor, which the normalisation removes. Scores depend only on the initial weights
(the trial seed), so one score pass serves every sparsity.
"""
import numpy as np
import tensorflow as tf


def connection_sensitivity(model, weights, x, y, chunk=2000, progress=None):
    """Normalised SNIP scores, one array per weight tensor, for `model` at `weights`.

    `progress(examples done, examples)` is called after each chunk (a pass over CIFAR-10's
    training split takes minutes on one core)."""
    for var, value in zip(model.trainable_variables, weights):
        var.assign(value)
    grad_sum = _grad_sum_fn(model)
    totals = [np.zeros(w.shape, np.float64) for w in weights]
    for start in range(0, len(x), chunk):
        grads = grad_sum(x[start:start + chunk], y[start:start + chunk])
        for t, g in zip(totals, grads):
            t += g.numpy()
        if progress is not None:
            progress(min(start + chunk, len(x)), len(x))
    scores = [np.abs(t * w) for t, w in zip(totals, weights)]
    norm = sum(s.sum() for s in scores)
    return [s / norm for s in scores]


def _grad_sum_fn(model):
    @tf.function(reduce_retracing=True)
    def grad_sum(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=False)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        return tape.gradient(loss, model.trainable_variables)
    return grad_sum


def masks_from_scores(scores, sparsity):
    """Keep the top round(N * (1 - sparsity)) entries of one global pool; ties by position."""
    flat = np.concatenate([s.ravel() for s in scores])
    keep = int(round(flat.size * (1.0 - sparsity)))
    order = np.argsort(-flat, kind="stable")
    mask = np.zeros(flat.size, np.float32)
    mask[order[:keep]] = 1.0
    out, start = [], 0
    for s in scores:
        out.append(mask[start:start + s.size].reshape(s.shape))
        start += s.size
    return out
