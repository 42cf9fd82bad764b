"""SGD, Momentum and Nesterov with TF1 semantics, and the learning-rate schedules.

TF1's MomentumOptimizer keeps the learning rate OUT of the velocity:
    v <- m v + g;   w <- w - lr v            (Nesterov: w <- w - lr (g + m v))
Keras's SGD folds lr into v, which differs once lr changes (linear decay), so we write the
three updates out instead of using keras.optimizers.
"""
import tensorflow as tf

from .spec import OPTIMIZERS  # noqa: F401 (re-exported: one definition, the spec vocabulary)
SCHEDULES = ("constant", "linear_decay")


def learning_rate(step, lr, schedule="constant", decay_steps=1.0, end_factor=1.0):
    """Learning rate used for the update taken at `step` (0-based, before the update).

    linear_decay is TF1's polynomial_decay with power 1: from lr down to lr * end_factor over
    decay_steps steps, then held at the end value.
    """
    if schedule == "constant":
        return lr
    step = tf.cast(step, lr.dtype) if isinstance(lr, tf.Tensor | tf.Variable) else float(step)
    frac = tf.minimum(step, decay_steps) / decay_steps
    end = lr * end_factor
    return (lr - end) * (1.0 - frac) + end


def apply_update(optimizer, weights, velocities, grads, lr, momentum):
    """Update `weights` in place from `grads` (already masked); `velocities` hold the TF1 v."""
    for w, v, g in zip(weights, velocities, grads):
        if optimizer == "sgd":
            w.assign_sub(lr * g)
            continue
        v.assign(momentum * v + g)
        step = g + momentum * v if optimizer == "nesterov" else v
        w.assign_sub(lr * step)
