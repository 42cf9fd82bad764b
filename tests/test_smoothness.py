"""Tests for repro.smoothness on problems with known answers (SYNTHETIC: quadratics, Gaussian
gradient samples, and conftest's tiny synthetic images for the chunked Keras gradient)."""
import numpy as np
import pytest

from repro import models, smoothness


def quadratic(eigenvalues, seed=0):
    """f(w) = 0.5 w^T H w in 2 blocks (a matrix and a vector), H = Q diag(eigenvalues) Q^T."""
    n = len(eigenvalues)
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    h = q @ np.diag(eigenvalues) @ q.T

    def split(v):
        return [v[:n - 2].reshape(2, -1), v[n - 2:]]

    def grad_fn(w):
        return split(h @ np.concatenate([a.ravel() for a in w]))

    return q, split, grad_fn


def test_lipschitz_of_a_quadratic_along_its_stiffest_direction_is_its_largest_eigenvalue():
    lam = np.array([0.3, 1.0, 2.5, 7.0, 0.8, 4.0])
    q, split, grad_fn = quadratic(lam)
    w = split(np.full(6, 0.5))
    top = q[:, np.argmax(lam)]
    est, ratios = smoothness.local_lipschitz(grad_fn, w, split(np.full(6, 0.5) + 0.01 * top))
    assert est == pytest.approx(lam.max(), rel=0.01)
    assert len(ratios) == 10  # gamma in {0.1, ..., 1.0}


def test_lipschitz_of_a_gradient_descent_step_is_bounded_by_the_spectrum():
    lam = np.array([0.5, 1.0, 2.0, 3.0, 5.0, 9.0])
    q, split, grad_fn = quadratic(lam, seed=1)
    w0 = np.random.default_rng(2).normal(size=6)
    w1 = w0 - 0.1 * np.concatenate([g.ravel() for g in grad_fn(split(w0))])
    est, _ = smoothness.local_lipschitz(grad_fn, split(w0), split(w1))
    assert lam.min() <= est <= lam.max() * (1 + 1e-9)


def test_zero_step_has_no_estimate():
    _, split, grad_fn = quadratic(np.ones(6))
    w = split(np.ones(6))
    assert np.isnan(smoothness.local_lipschitz(grad_fn, w, w)[0])


def test_noise_scale_recovers_known_gradient_statistics():
    """Per-example gradients g ~ N(G, Sigma): E|mean of B|^2 = |G|^2 + tr(Sigma)/B exactly."""
    rng = np.random.default_rng(0)
    G, sigma = rng.normal(size=50) * 0.2, rng.uniform(0.5, 2.0, size=50)
    want = float(sigma.sum() / (G @ G))

    def mean_sq_norm(b, reps=4000):
        g = G + rng.normal(size=(reps, 50)) * np.sqrt(sigma / b)  # mean of b examples
        return float(np.mean(np.sum(g * g, axis=1)))

    got, g2, trace = smoothness.simple_noise_scale(mean_sq_norm(4), 4, mean_sq_norm(256), 256)
    assert got == pytest.approx(want, rel=0.1)
    assert trace == pytest.approx(sigma.sum(), rel=0.1)


def test_chunked_full_gradient_equals_one_pass_and_respects_the_mask(synthetic_data):
    import tensorflow as tf
    model = models.build("simple_cnn", synthetic_data.x_train.shape[1:])
    w = models.initial_weights(model, 0)
    masks = [(np.random.default_rng(i).random(v.shape) > 0.5).astype(np.float32)
             for i, v in enumerate(w)]
    chunked = smoothness.full_gradient_fn(model, masks, synthetic_data.x_train,
                                          synthetic_data.y_train, chunk=7)(w)
    for v, a, m in zip(model.trainable_variables, w, masks):
        v.assign(a * m)
    with tf.GradientTape() as tape:
        logits = model(synthetic_data.x_train, training=False)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(synthetic_data.y_train, logits))
    whole = [g.numpy() * m for g, m in zip(tape.gradient(loss, model.trainable_variables), masks)]
    for c, g, m in zip(chunked, whole, masks):
        np.testing.assert_allclose(c, g, rtol=1e-4, atol=1e-6)
        assert (c[m == 0] == 0).all()
