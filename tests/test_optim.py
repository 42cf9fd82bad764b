"""Tests for repro.optim: TF1 SGD / Momentum / Nesterov updates and the learning-rate schedules.

Expected values are written out by hand (arithmetic in the comments), not recomputed from the
formula under test. Gradients are fixed numbers; no data or model is involved.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from repro import optim

LR, M = 0.1, 0.9
W0 = [1.0, -2.0]
G = [0.5, -1.0]


def run_steps(optimizer, n, lr_at=lambda t: LR, momentum=M):
    """Apply n updates with the fixed gradient G; returns the weights after each step."""
    w = tf.Variable(np.array(W0, np.float32))
    v = tf.Variable(np.zeros(2, np.float32))
    g = tf.constant(np.array(G, np.float32))
    out = []
    for t in range(n):
        optim.apply_update(optimizer, [w], [v], [g], lr_at(t), momentum)
        out.append(w.numpy().copy())
    return out, v.numpy()


def test_sgd_constant_lr():
    ws, v = run_steps("sgd", 3)
    # w <- w - 0.1 g: [1, -2] -> [0.95, -1.9] -> [0.90, -1.8] -> [0.85, -1.7]
    np.testing.assert_allclose(ws, [[0.95, -1.9], [0.90, -1.8], [0.85, -1.7]], rtol=1e-6)
    np.testing.assert_array_equal(v, [0.0, 0.0])  # plain SGD keeps no velocity


def test_momentum_constant_lr_tf1():
    ws, v = run_steps("momentum", 3)
    # component 1 (g = 0.5): v = 0.5, 0.95, 1.355
    #   w = 1 - 0.05 = 0.95; 0.95 - 0.095 = 0.855; 0.855 - 0.1355 = 0.7195
    # component 2 (g = -1): v = -1, -1.9, -2.71
    #   w = -2 + 0.1 = -1.9; -1.9 + 0.19 = -1.71; -1.71 + 0.271 = -1.439
    np.testing.assert_allclose(ws, [[0.95, -1.9], [0.855, -1.71], [0.7195, -1.439]], rtol=1e-6)
    np.testing.assert_allclose(v, [1.355, -2.71], rtol=1e-6)  # v holds no lr (TF1)


def test_nesterov_constant_lr_tf1():
    ws, v = run_steps("nesterov", 3)
    # component 1: v1 = 0.5, step = 0.5 + 0.9*0.5 = 0.95,   w = 1 - 0.095 = 0.905
    #              v2 = 0.95, step = 0.5 + 0.855 = 1.355,    w = 0.905 - 0.1355 = 0.7695
    #              v3 = 1.355, step = 0.5 + 1.2195 = 1.7195, w = 0.7695 - 0.17195 = 0.59755
    # component 2: v1 = -1, step = -1.9,    w = -2 + 0.19 = -1.81
    #              v2 = -1.9, step = -2.71, w = -1.81 + 0.271 = -1.539
    #              v3 = -2.71, step = -3.439, w = -1.539 + 0.3439 = -1.1951
    np.testing.assert_allclose(ws, [[0.905, -1.81], [0.7695, -1.539], [0.59755, -1.1951]],
                               rtol=1e-6)
    np.testing.assert_allclose(v, [1.355, -2.71], rtol=1e-6)


def test_momentum_varying_gradients():
    """Gradients 0.5, -0.2, 1.0 on one weight, m = 0.9, lr = 0.1."""
    w, v = tf.Variable([1.0]), tf.Variable([0.0])
    expected = [
        0.95,     # v = 0.5;                 w = 1 - 0.05
        0.925,    # v = 0.45 - 0.2 = 0.25;   w = 0.95 - 0.025
        0.8025,   # v = 0.225 + 1.0 = 1.225; w = 0.925 - 0.1225
    ]
    for g, e in zip([0.5, -0.2, 1.0], expected):
        optim.apply_update("momentum", [w], [v], [tf.constant([g])], LR, M)
        assert w.numpy()[0] == pytest.approx(e, rel=1e-6)


def test_constant_schedule_returns_lr():
    for step in (0, 5, 10**6):
        assert optim.learning_rate(step, 0.3) == 0.3
        assert optim.learning_rate(step, 0.3, "constant", 10, 0.01) == 0.3


def test_linear_decay_values():
    # lr 0.1 -> 0.1 * 0.1 = 0.01 over 4 steps: lr(t) = 0.09 * (1 - min(t, 4) / 4) + 0.01
    expected = {0: 0.1, 1: 0.0775, 2: 0.055, 3: 0.0325, 4: 0.01, 5: 0.01, 1000: 0.01}
    for step, e in expected.items():
        got = float(optim.learning_rate(step, 0.1, "linear_decay", 4, 0.1))
        assert got == pytest.approx(e, rel=1e-6), step  # float32 arithmetic


def test_linear_decay_paper_scale():
    # lr 0.5, end factor 1e-3 (end 5e-4), decay over 30000 steps
    # step 15000: (0.5 - 0.0005) * 0.5 + 0.0005 = 0.25025
    # step 30000 and 50000: 0.0005
    f = lambda s: float(optim.learning_rate(s, 0.5, "linear_decay", 30000, 1e-3))  # noqa: E731
    assert f(0) == pytest.approx(0.5)
    assert f(15000) == pytest.approx(0.25025)
    assert f(30000) == pytest.approx(0.0005)
    assert f(50000) == pytest.approx(0.0005)


def test_linear_decay_with_tf_variables_as_in_engine():
    """The engine passes tf.Variables (int64 step, float32 lr/decay/end factor)."""
    lr, ds, ef = tf.Variable(0.1), tf.Variable(4.0), tf.Variable(0.1)
    for step, e in {0: 0.1, 2: 0.055, 4: 0.01, 9: 0.01}.items():
        got = optim.learning_rate(tf.Variable(step, dtype=tf.int64), lr, "linear_decay", ds, ef)
        assert float(got) == pytest.approx(e, rel=1e-6)


def decay_lr(t):
    return float(optim.learning_rate(t, 0.1, "linear_decay", 4, 0.1))


def test_sgd_under_linear_decay():
    ws, _ = run_steps("sgd", 6, decay_lr)
    # component 1 (g = 0.5), lr = 0.1, 0.0775, 0.055, 0.0325, 0.01, 0.01:
    # 1 - 0.05 = 0.95; - 0.03875 = 0.91125; - 0.0275 = 0.88375; - 0.01625 = 0.8675;
    # - 0.005 = 0.8625; - 0.005 = 0.8575
    np.testing.assert_allclose([w[0] for w in ws],
                               [0.95, 0.91125, 0.88375, 0.8675, 0.8625, 0.8575], rtol=1e-6)


def test_momentum_under_linear_decay_tf1():
    ws, _ = run_steps("momentum", 3, decay_lr)
    # component 1: v = 0.5, 0.95, 1.355
    #   w = 1 - 0.1*0.5 = 0.95; 0.95 - 0.0775*0.95 = 0.876375; 0.876375 - 0.055*1.355 = 0.80185
    np.testing.assert_allclose([w[0] for w in ws], [0.95, 0.876375, 0.80185], rtol=1e-6)


def test_nesterov_under_linear_decay_tf1():
    ws, _ = run_steps("nesterov", 3, decay_lr)
    # component 1: step = 0.95, 1.355, 1.7195
    #   w = 1 - 0.095 = 0.905; 0.905 - 0.0775*1.355 = 0.7999875; 0.7999875 - 0.055*1.7195 = 0.705415
    np.testing.assert_allclose([w[0] for w in ws], [0.905, 0.7999875, 0.705415], rtol=1e-6)


def test_tf1_momentum_differs_from_keras_under_decay():
    """Keras folds lr into the velocity: v' <- m v' - lr g; w <- w + v'.

    Hand computation, g = 0.5, lr = 0.1, 0.0775, 0.055:
      v' = -0.05;                        w = 0.95
      v' = -0.045 - 0.03875 = -0.08375;  w = 0.86625
      v' = -0.075375 - 0.0275 = -0.102875; w = 0.763375
    TF1 (repro) gives 0.95, 0.876375, 0.80185: equal at step 1, then different.
    With a constant lr the two agree (lr * v == -v').
    """
    sched = keras.optimizers.schedules.PolynomialDecay(0.1, 4, end_learning_rate=0.01, power=1.0)
    opt = keras.optimizers.SGD(learning_rate=sched, momentum=0.9)
    w = keras.Variable(np.array([1.0], np.float32))
    keras_ws = []
    for _ in range(3):
        opt.apply_gradients([(tf.constant([0.5]), w)])
        keras_ws.append(float(np.asarray(w)[0]))
    np.testing.assert_allclose(keras_ws, [0.95, 0.86625, 0.763375], rtol=1e-5)

    ours, _ = run_steps("momentum", 3, decay_lr)
    ours = [w[0] for w in ours]
    assert ours[0] == pytest.approx(keras_ws[0], rel=1e-6)
    assert ours[2] - keras_ws[2] == pytest.approx(0.80185 - 0.763375, abs=1e-5)

    # constant lr: the two conventions coincide
    opt = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    w = keras.Variable(np.array([1.0], np.float32))
    for _ in range(3):
        opt.apply_gradients([(tf.constant([0.5]), w)])
    assert float(np.asarray(w)[0]) == pytest.approx(run_steps("momentum", 3)[0][2][0], rel=1e-5)
