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


def norm(arrays):
    """Euclidean norm of a list of arrays taken as one vector (in float64)."""
    return float(np.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64))) for a in arrays)))


def local_lipschitz(grad_fn, w, w_next, gammas=GAMMAS, g0=None):
    """Appendix C's local Lipschitz estimate at `w` along d = `w_next` - `w`.

    `grad_fn(weights)` returns the full-batch gradient (a list of arrays like `w`); `g0`, if
    given, is grad_fn(w) already computed. Returns (L, [ratio per gamma]); NaN when the step
    is zero (nothing to measure along).
    """
    d = [np.asarray(b, np.float64) - np.asarray(a, np.float64) for a, b in zip(w, w_next)]
    if norm(d) == 0.0:
        return float("nan"), []
    g0 = grad_fn(w) if g0 is None else g0
    ratios = []
    for gamma in gammas:
        g = grad_fn([np.asarray(a, np.float64) + gamma * di for a, di in zip(w, d)])
        ratios.append(norm([x - y for x, y in zip(g, g0)]) / (gamma * norm(d)))
    return max(ratios), ratios


class MaskedLoss:
    """Loss and gradients of a masked network (w_eff = mask * w; pruned entries get zero
    gradient) at any weights, on a model of its own so the training run is never touched."""

    def __init__(self, model, masks):
        import tensorflow as tf

        self.model, self.variables = model, model.trainable_variables
        self.masks = masks or [np.ones(v.shape, np.float32) for v in self.variables]

        @tf.function(reduce_retracing=True)
        def loss_and_grad_sum(xb, yb):
            with tf.GradientTape() as tape:
                logits = model(xb, training=False)
                loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, logits))
            return loss, tape.gradient(loss, self.variables)

        self._sum = loss_and_grad_sum

    def set_weights(self, weights):
        for v, w, m in zip(self.variables, weights, self.masks):
            v.assign(np.asarray(w, np.float32) * m)

    def mean(self, weights, x, y, chunk=2000):
        """(mean loss, mean gradient) over all of (x, y), summed chunk by chunk in float64 so
        memory stays bounded whatever the split's size."""
        self.set_weights(weights)
        loss, total = 0.0, [np.zeros(v.shape, np.float64) for v in self.variables]
        for start in range(0, len(x), chunk):
            l, grads = self._sum(x[start:start + chunk], y[start:start + chunk])
            loss += float(l)
            for t, g in zip(total, grads):
                t += g.numpy()
        return loss / len(x), [t * m / len(x) for t, m in zip(total, self.masks)]

    def per_example_variance(self, weights, x, y, mean_grad):
        """beta: mean over the examples of ||g_i - G||^2, the gradient variance at B = 1."""
        self.set_weights(weights)
        total = 0.0
        for i in range(len(x)):
            _, g = self._sum(x[i:i + 1], y[i:i + 1])
            total += norm([gi.numpy() * m - G for gi, m, G in zip(g, self.masks, mean_grad)]) ** 2
        return total / len(x)

    def mean_sq_norm(self, weights, batches):
        """Mean over `batches` [(x, y), ...] of |mean gradient of the batch|^2."""
        self.set_weights(weights)
        norms = []
        for x, y in batches:
            _, g = self._sum(x, y)
            norms.append(norm([gi.numpy() * m / len(x) for gi, m in zip(g, self.masks)]) ** 2)
        return float(np.mean(norms))


def full_gradient_fn(model, masks, x, y, chunk=2000):
    """grad_fn(weights) -> mean cross-entropy gradient over all of (x, y) through the masked
    network (w_eff = mask * w; pruned entries get zero gradient), summed chunk by chunk."""
    masked = MaskedLoss(model, masks)
    return lambda weights: masked.mean(weights, x, y, chunk)[1]


def simple_noise_scale(sq_norm_small, b_small, sq_norm_big, b_big):
    """B_simple = tr(Sigma) / |G|^2 from E|G_B|^2 = |G|^2 + tr(Sigma) / B measured at two
    batch sizes (McCandlish et al. 2018, App. A.1). Inputs: mean squared gradient norms at
    batch sizes `b_small` < `b_big`. Returns (B_simple, |G|^2, tr(Sigma))."""
    if not b_small < b_big:
        raise ValueError(f"need b_small < b_big, got {b_small}, {b_big}")
    g2 = (b_big * sq_norm_big - b_small * sq_norm_small) / (b_big - b_small)
    trace = (sq_norm_small - sq_norm_big) / (1.0 / b_small - 1.0 / b_big)
    return (trace / g2 if g2 > 0 else float("inf")), g2, trace
