"""Smoothness of the training loss (paper Sec. 4.2 and Appendix C) and the gradient noise scale.

- `local_lipschitz`: the Appendix C estimate of the Lipschitz constant of the full-batch gradient
  at w_k, along the step d = w_{k+1} - w_k:
  L(w_k) = max over gamma of ||grad f(w_k + gamma d) - grad f(w_k)|| / ||gamma d||.
- `full_gradient_fn`: grad f over a whole split through a masked network, accumulated in chunks
  so memory stays bounded whatever the split's size.
- `simple_noise_scale`: McCandlish et al. (2018)'s B_simple = tr(Sigma) / |G|^2 from squared
  gradient norms at two batch sizes (their unbiased two-batch estimator), an independent
  prediction of the critical batch size.
"""
import numpy as np

GAMMAS = tuple(np.round(np.arange(1, 11) / 10, 1))  # {0.1, 0.2, ..., 1.0}, delta = 0.1


def _norm(arrays):
    return float(np.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64))) for a in arrays)))


def local_lipschitz(grad_fn, w, w_next, gammas=GAMMAS):
    """Appendix C's local Lipschitz estimate at `w` along d = `w_next` - `w`.

    `grad_fn(weights)` returns the full-batch gradient (a list of arrays like `w`). Returns
    (L, [ratio per gamma]); NaN when the step is zero (nothing to measure along).
    """
    d = [np.asarray(b, np.float64) - np.asarray(a, np.float64) for a, b in zip(w, w_next)]
    if _norm(d) == 0.0:
        return float("nan"), []
    g0 = grad_fn(w)
    ratios = []
    for gamma in gammas:
        g = grad_fn([np.asarray(a, np.float64) + gamma * di for a, di in zip(w, d)])
        ratios.append(_norm([x - y for x, y in zip(g, g0)]) / (gamma * _norm(d)))
    return max(ratios), ratios


def full_gradient_fn(model, masks, x, y, chunk=2000):
    """grad_fn(weights) -> mean cross-entropy gradient over all of (x, y) through the masked
    network (w_eff = mask * w; pruned entries get zero gradient), summed chunk by chunk."""
    import tensorflow as tf

    variables = model.trainable_variables
    masks = masks or [np.ones(v.shape, np.float32) for v in variables]

    @tf.function(reduce_retracing=True)
    def grad_sum(xb, yb):
        with tf.GradientTape() as tape:
            logits = model(xb, training=False)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, logits))
        return tape.gradient(loss, variables)

    def grad_fn(weights):
        for v, w, m in zip(variables, weights, masks):
            v.assign(np.asarray(w, np.float32) * m)
        total = [np.zeros(v.shape, np.float64) for v in variables]
        for start in range(0, len(x), chunk):
            for t, g in zip(total, grad_sum(x[start:start + chunk], y[start:start + chunk])):
                t += g.numpy()
        return [t * m / len(x) for t, m in zip(total, masks)]

    return grad_fn


def simple_noise_scale(sq_norm_small, b_small, sq_norm_big, b_big):
    """B_simple = tr(Sigma) / |G|^2 from E|G_B|^2 = |G|^2 + tr(Sigma) / B measured at two
    batch sizes (McCandlish et al. 2018, App. A.1). Inputs: mean squared gradient norms at
    batch sizes `b_small` < `b_big`. Returns (B_simple, |G|^2, tr(Sigma))."""
    if not b_small < b_big:
        raise ValueError(f"need b_small < b_big, got {b_small}, {b_big}")
    g2 = (b_big * sq_norm_big - b_small * sq_norm_small) / (b_big - b_small)
    trace = (sq_norm_small - sq_norm_big) / (1.0 / b_small - 1.0 / b_big)
    return (trace / g2 if g2 > 0 else float("inf")), g2, trace
