"""Tests for repro.pruning: global top-k masks and SNIP connection sensitivity.

Score arrays are SYNTHETIC random numbers; connection sensitivity runs Simple-CNN on 64
SYNTHETIC 28x28x1 images whose labels follow a fixed rule (tests/conftest.py).
"""
import numpy as np
import pytest
import tensorflow as tf

from repro import models, pruning


def random_scores(seed=0, shapes=((10,), (3, 4), (5,), (2, 2, 3))):
    rng = np.random.default_rng(seed)
    return [rng.random(s) for s in shapes]


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_masks_keep_exactly_round_n_times_density(sparsity):
    scores = random_scores()
    n = sum(s.size for s in scores)  # 10 + 12 + 5 + 12 = 39
    masks = pruning.masks_from_scores(scores, sparsity)
    assert [m.shape for m in masks] == [s.shape for s in scores]
    assert all(set(np.unique(m)) <= {0.0, 1.0} for m in masks)
    assert int(sum(m.sum() for m in masks)) == round(n * (1 - sparsity))


def test_masks_known_counts():
    scores = random_scores()  # N = 39
    kept = {0.5: 20, 0.7: 12, 0.9: 4}  # round(19.5) = 20 (half to even), round(11.7), round(3.9)
    for s, k in kept.items():
        assert int(sum(m.sum() for m in pruning.masks_from_scores(scores, s))) == k


def test_masks_keep_the_top_scores():
    scores = random_scores(seed=3)
    masks = pruning.masks_from_scores(scores, 0.6)
    kept = np.concatenate([s[m == 1] for s, m in zip(scores, masks)])
    dropped = np.concatenate([s[m == 0] for s, m in zip(scores, masks)])
    assert kept.min() > dropped.max()


def test_masks_are_global_across_tensors():
    """One pool: a tensor of small scores can be pruned entirely, another kept entirely."""
    big = np.full((4, 5), 10.0) + np.arange(20).reshape(4, 5)
    small = np.linspace(0.0, 1.0, 20).reshape(4, 5)
    masks = pruning.masks_from_scores([small, big], 0.5)
    assert masks[0].sum() == 0
    assert masks[1].sum() == 20
    # a per-tensor rule would have kept 10 of each
    masks = pruning.masks_from_scores([small, big], 0.6)  # keep 16: all of big lost 4
    assert masks[0].sum() == 0 and masks[1].sum() == 16
    assert np.all(masks[1].ravel()[:4] == 0)  # the four smallest of `big` went


def test_masks_deterministic_including_ties():
    scores = [np.zeros((3, 3)), np.ones(4), np.zeros(5)]  # many ties
    a = pruning.masks_from_scores(scores, 0.5)  # N = 18, keep 9: the 4 ones + 5 tied zeros
    b = pruning.masks_from_scores([s.copy() for s in scores], 0.5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert a[1].sum() == 4
    assert a[0].sum() + a[2].sum() == 5
    # ties broken by position: the first zeros in the flattened pool are kept
    np.testing.assert_array_equal(a[0].ravel(), [1, 1, 1, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(a[2], np.zeros(5))


@pytest.fixture(scope="module")
def snip_setup(synthetic_data):
    model = models.build("simple_cnn", (28, 28, 1))
    init = models.initial_weights(model, 0)
    x, y = synthetic_data.x_train, synthetic_data.y_train
    # chunk 20 does not divide 64: chunks of 20, 20, 20, 4
    scores = pruning.connection_sensitivity(model, init, x, y, chunk=20)
    return model, init, x, y, scores


def test_scores_normalised_and_nonnegative(snip_setup):
    model, init, _, _, scores = snip_setup
    assert [s.shape for s in scores] == [w.shape for w in init]
    total = sum(float(s.sum()) for s in scores)
    assert total == pytest.approx(1.0, rel=1e-9)
    assert all(np.all(s >= 0) for s in scores)
    assert sum(int((s > 0).sum()) for s in scores) > 0.9 * sum(s.size for s in scores if s.ndim > 1)


def test_zero_biases_score_zero_and_are_pruned(snip_setup):
    _, init, _, _, scores = snip_setup
    for w, s in zip(init, scores):
        if w.ndim == 1:
            assert np.all(w == 0) and np.all(s == 0)
    masks = pruning.masks_from_scores(scores, 0.5)
    for w, m in zip(init, masks):
        if w.ndim == 1:
            assert m.sum() == 0  # every bias pruned at s > 0
    masks0 = pruning.masks_from_scores(scores, 0.0)
    assert all(m.min() == 1.0 for m in masks0)  # s = 0 keeps everything, biases included


def test_scores_equal_abs_w_times_summed_gradient(snip_setup):
    """Independent computation: dL/dc at c = 1 for w_eff = c * w is w * dL/dw, summed over
    batches of 16 (the sum of per-batch mean losses; a constant factor the normalisation removes)."""
    _, init, x, y, scores = snip_setup
    cs = [tf.Variable(tf.ones_like(w)) for w in init]
    totals = [np.zeros(w.shape) for w in init]
    for start in range(0, len(x), 16):
        with tf.GradientTape() as tape:
            effs = [c * w for c, w in zip(cs, init)]  # w_eff = c * w
            logits = functional_simple_cnn(x[start:start + 16], effs)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(y[start:start + 16], logits))
        grads = tape.gradient(loss, cs)
        for t, g in zip(totals, grads):
            t += g.numpy()
    expected = [np.abs(t) for t in totals]
    norm = sum(e.sum() for e in expected)
    expected = [e / norm for e in expected]
    for got, want in zip(scores, expected):
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-7)
    # and the ranking agrees where it matters: the masks at 90 % sparsity nearly coincide
    m1 = np.concatenate([m.ravel() for m in pruning.masks_from_scores(scores, 0.9)])
    m2 = np.concatenate([m.ravel() for m in pruning.masks_from_scores(expected, 0.9)])
    assert (m1 != m2).sum() <= 0.001 * m1.size


def functional_simple_cnn(x, p):
    """Simple-CNN written with tf.nn ops on explicit (kernel, bias) tensors, layer by layer."""
    k1, b1, k2, b2, k3, b3 = p
    h = tf.nn.relu(tf.nn.conv2d(x, k1, 1, "VALID") + b1)
    h = tf.nn.max_pool2d(h, 2, 2, "VALID")
    h = tf.nn.relu(tf.nn.conv2d(h, k2, 1, "VALID") + b2)
    h = tf.nn.max_pool2d(h, 2, 2, "VALID")
    h = tf.reshape(h, (tf.shape(h)[0], -1))
    return h @ k3 + b3


def test_functional_reference_matches_keras_model(snip_setup):
    """The reference above is the same network as repro.models.simple_cnn."""
    model, init, x, _, _ = snip_setup
    for v, w in zip(model.trainable_variables, init):
        v.assign(w)
    np.testing.assert_allclose(np.asarray(model(x[:8])), functional_simple_cnn(x[:8], init).numpy(),
                               rtol=1e-4, atol=1e-5)


def test_scores_depend_on_seed_not_on_chunking(synthetic_data):
    model = models.build("simple_cnn", (28, 28, 1))
    x, y = synthetic_data.x_train, synthetic_data.y_train
    init0 = models.initial_weights(model, 0)
    a = pruning.connection_sensitivity(model, init0, x, y, chunk=64)
    b = pruning.connection_sensitivity(model, init0, x, y, chunk=7)
    for s, t in zip(a, b):
        np.testing.assert_allclose(s, t, rtol=1e-4, atol=1e-9)
    c = pruning.connection_sensitivity(model, models.initial_weights(model, 1), x, y, chunk=64)
    m_a = np.concatenate([m.ravel() for m in pruning.masks_from_scores(a, 0.9)])
    m_c = np.concatenate([m.ravel() for m in pruning.masks_from_scores(c, 0.9)])
    assert (m_a != m_c).mean() > 0.05
