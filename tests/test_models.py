"""Tests for repro.models: exact parameter counts, output shapes and the seeded initialisation.

No data is read; forward passes use a few SYNTHETIC random images.
"""
import math

import numpy as np
import pytest

from repro import models


@pytest.fixture(scope="module")
def cnn():
    return models.build("simple_cnn", (28, 28, 1))


@pytest.fixture(scope="module")
def resnet():
    return models.build("resnet8", (32, 32, 3))


def test_simple_cnn_parameter_count_is_exact(cnn):
    assert models.parameter_count("simple_cnn", (28, 28, 1)) == 62_346
    kernels = sum(int(np.prod(v.shape)) for v in cnn.trainable_variables if len(v.shape) > 1)
    biases = sum(int(np.prod(v.shape)) for v in cnn.trainable_variables if len(v.shape) == 1)
    assert (kernels, biases) == (62_240, 106)  # docs/facts.md: 62,346 = 62,240 weights + 106 biases
    assert models.PARAMETERS["simple_cnn"] == 62_346


def test_resnet8_parameter_count_is_exact(resnet):
    assert models.parameter_count("resnet8", (32, 32, 3)) == 75_050
    kernels = sum(int(np.prod(v.shape)) for v in resnet.trainable_variables if len(v.shape) > 1)
    biases = sum(int(np.prod(v.shape)) for v in resnet.trainable_variables if len(v.shape) == 1)
    assert (kernels, biases) == (74_800, 250)
    assert models.PARAMETERS["resnet8"] == 75_050


def test_no_non_trainable_state(cnn, resnet):
    """No batch norm: every variable is trainable."""
    for m in (cnn, resnet):
        assert len(m.non_trainable_variables) == 0


@pytest.mark.parametrize("name,shape", [("simple_cnn", (28, 28, 1)), ("resnet8", (32, 32, 3))])
def test_output_is_n_by_10_logits(name, shape, cnn, resnet):
    model = cnn if name == "simple_cnn" else resnet
    x = np.random.default_rng(0).normal(size=(5, *shape)).astype(np.float32)  # SYNTHETIC
    out = np.asarray(model(x, training=False))
    assert out.shape == (5, 10)
    assert np.all(np.isfinite(out))
    # logits, not probabilities: rows need not sum to 1
    assert not np.allclose(out.sum(axis=1), 1.0)


def test_initial_weights_deterministic_per_seed(cnn):
    a = models.initial_weights(cnn, 7)
    b = models.initial_weights(cnn, 7)
    assert len(a) == len(cnn.trainable_variables)
    for x, y, v in zip(a, b, cnn.trainable_variables):
        assert x.shape == tuple(v.shape)
        assert x.dtype == np.float32
        np.testing.assert_array_equal(x, y)


def test_initial_weights_independent_of_model_instance(cnn):
    """Trial i starts from the same point whichever model object draws it."""
    other = models.build("simple_cnn", (28, 28, 1))
    for x, y in zip(models.initial_weights(cnn, 3), models.initial_weights(other, 3)):
        np.testing.assert_array_equal(x, y)


def test_initial_weights_differ_across_seeds(cnn):
    a = models.initial_weights(cnn, 0)
    b = models.initial_weights(cnn, 1)
    for x, y in zip(a, b):
        if x.ndim > 1:
            assert not np.allclose(x, y)
    # and different tensors of one seed are not copies of each other
    k1, k2 = [w for w in a if w.ndim > 1][:2]
    assert not np.allclose(k1.ravel()[:100], k2.ravel()[:100])


@pytest.mark.parametrize("name,shape", [("simple_cnn", (28, 28, 1)), ("resnet8", (32, 32, 3))])
def test_initial_weights_biases_zero_and_kernel_std(name, shape, cnn, resnet):
    model = cnn if name == "simple_cnn" else resnet
    values = models.initial_weights(model, 0)
    checked = 0
    for w in values:
        if w.ndim == 1:
            assert np.all(w == 0.0)
            continue
        fan_in = math.prod(w.shape[:-1])
        target = math.sqrt(1.0 / fan_in)
        # truncated normal: nothing beyond 2 x (target / 0.8796)
        assert np.abs(w).max() <= 2.0 * target / 0.87962566103423978 * (1 + 1e-6)
        if w.size >= 9000:  # large kernels: the sample std is a good estimate
            assert abs(w.std() / target - 1.0) < 0.10, (w.shape, w.std(), target)
            assert abs(w.mean()) < 0.1 * target
            checked += 1
    assert checked >= 2
