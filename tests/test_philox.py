"""repro.philox draws TensorFlow's stateless truncated normal in numpy, bit for bit: the JAX
engine starts every trial from TensorFlow's initial weights without TensorFlow installed."""
import numpy as np
import pytest
import tensorflow as tf

from repro import models, philox


@pytest.mark.parametrize("name, shape", [("simple_cnn", (28, 28, 1)), ("resnet8", (32, 32, 3))])
@pytest.mark.parametrize("seed", [0, 7, 123_456])
def test_initial_weights_without_tensorflow_are_tensorflows_bits(name, shape, seed, monkeypatch):
    model = models.build(name, shape)
    want = models.initial_weights(model, seed)  # TensorFlow's draws
    monkeypatch.setattr(models.keras.backend, "backend", lambda: "jax")
    got = models.initial_weights(model, seed)  # repro.philox's, as on the JAX backend
    assert len(got) == len(want) == len(model.trainable_variables)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype == np.float32
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("shape, seed", [((7,), (1, 1)), ((1024, 10), (-5, 2**40)), ((3, 3, 3), (2**63 - 1, 0))])
def test_odd_sizes_and_64_bit_seeds(shape, seed):
    want = tf.random.stateless_truncated_normal(shape, seed=tf.constant(seed, tf.int64)).numpy()
    np.testing.assert_array_equal(philox.stateless_truncated_normal(shape, seed), want)


def test_draws_lie_inside_two_standard_deviations():
    draws = philox.stateless_truncated_normal((20_000,), (3, 4))
    assert np.abs(draws).max() < 2.0 and abs(draws.std() - 0.8796) < 0.02
