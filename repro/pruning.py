"""SNIP pruning at initialisation (Lee et al. 2019), as in the authors' code.

Connection sensitivity of every kernel and bias entry: |dL/dc| at c = 1 for w_eff = c * w,
with the gradient summed over one pass of the training split. dL/dc = w * dL/dw, and the sum of
per-batch mean gradients over batches of 100 equals (N / 100) x the mean gradient over the
split, so we accumulate the mean over large chunks: same scores up to float rounding and a
constant factor, which the normalisation removes. Scores depend only on the initial weights
(the trial seed), so one score pass serves every sparsity. On the JAX backend the gradient is
jax's (`_grad_sum_fn_jax`); the scores are cached per trial seed whichever engine made them
(repro.run.Workload.mask), so both engines prune with the same masks.
"""
import numpy as np


def connection_sensitivity(model, weights, x, y, chunk=2000, progress=None):
    """Normalised SNIP scores, one array per weight tensor, for `model` at `weights`.

    `progress(examples done, examples)` is called after each chunk (a pass over CIFAR-10's
    training split takes minutes on one core)."""
    import keras
    if keras.backend.backend() == "jax":
        grad_sum = _grad_sum_fn_jax(model, weights)
    else:
        for var, value in zip(model.trainable_variables, weights):
            var.assign(value)
        grad_sum = _grad_sum_fn(model)
    totals = [np.zeros(w.shape, np.float64) for w in weights]
    for start in range(0, len(x), chunk):
        grads = grad_sum(x[start:start + chunk], y[start:start + chunk])
        for t, g in zip(totals, grads):
            t += np.asarray(g)
        if progress is not None:
            progress(min(start + chunk, len(x)), len(x))
    scores = [np.abs(t * w) for t, w in zip(totals, weights)]
    norm = sum(s.sum() for s in scores)
    return [s / norm for s in scores]


def _grad_sum_fn(model):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def grad_sum(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=False)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        return tape.gradient(loss, model.trainable_variables)
    return grad_sum


def _grad_sum_fn_jax(model, weights):
    """(x, y) -> gradient of the summed cross-entropy at `weights`, with jax (Keras's
    stateless_call: the model's own layers, its variables untouched)."""
    import jax
    import jax.numpy as jnp
    params = [jnp.asarray(w) for w in weights]

    def loss(params, x, y):
        logits, _ = model.stateless_call(params, [], x, training=False)
        true = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
        return jnp.sum(jax.nn.logsumexp(logits, axis=1) - true)

    grad = jax.jit(jax.grad(loss))
    return lambda x, y: grad(params, jnp.asarray(x), jnp.asarray(y, jnp.int32))


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
