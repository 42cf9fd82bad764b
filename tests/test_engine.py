"""Tests for repro.engine: the data order and one trial's training loop.

Training uses tiny SYNTHETIC data (tests/conftest.py): 64 train + 64 validation 28x28x1
noise images with a bright patch in the quadrant given by the label (4 classes), on
Simple-CNN. With SGD at lr 1e-3 and batch 16 the goal (5 % error) is reached after ~24 steps.
"""
import math

import numpy as np
import pytest

from repro import data as data_mod, engine, models, pruning

EVAL = list(range(8, 201, 8))
GOAL = 0.05
HP = {"learning_rate": 1e-3}


# ---------------------------------------------------------------- DataOrder

def test_each_epoch_is_a_permutation():
    order = engine.DataOrder(10, seed=0)
    idx = order.indices(0, 15, 2)  # 30 examples = 3 epochs of 10
    assert idx.shape == (15, 2)
    assert idx.dtype == np.int32
    flat = idx.ravel()
    for e in range(3):
        assert sorted(flat[10 * e:10 * e + 10]) == list(range(10))
    assert not np.array_equal(flat[:10], flat[10:20])  # reshuffled per epoch


def test_batches_cross_epoch_boundaries():
    order = engine.DataOrder(10, seed=1)
    idx = order.indices(0, 5, 4)  # 20 examples: step 2 holds examples 8..11 (2 of epoch 0, 2 of epoch 1)
    flat = idx.ravel()
    np.testing.assert_array_equal(idx[2], flat[8:12])
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    np.testing.assert_array_equal(order.indices(2, 3, 4)[0], flat[8:12])


def test_same_seed_same_order_other_seed_differs():
    a = engine.DataOrder(50, seed=7).indices(0, 30, 8)
    b = engine.DataOrder(50, seed=7).indices(0, 30, 8)
    c = engine.DataOrder(50, seed=8).indices(0, 30, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("start,end", [(0, 1), (3, 9), (12, 13), (7, 40), (39, 40), (5, 5)])
def test_any_step_range_is_a_slice_of_a_longer_range(start, end):
    long = engine.DataOrder(13, seed=3).indices(0, 40, 6)  # 240 examples, 13-example epochs
    fresh = engine.DataOrder(13, seed=3)
    np.testing.assert_array_equal(fresh.indices(start, end, 6), long[start:end])


def test_out_of_order_requests_beyond_cache():
    """Requests that jump around (evicting cached epochs) give the same indices."""
    order = engine.DataOrder(5, seed=2)
    long = engine.DataOrder(5, seed=2).indices(0, 100, 3)
    for start in (90, 0, 50, 10, 99, 1):
        np.testing.assert_array_equal(order.indices(start, start + 1, 3), long[start:start + 1])


# ---------------------------------------------------------------- Engine

@pytest.fixture(scope="module")
def eng(synthetic_data):
    return engine.Engine(synthetic_data, "simple_cnn", "sgd", "constant", eval_chunk=25)


@pytest.fixture(scope="module")
def init(eng):
    return models.initial_weights(eng.model, 0)


def trial(eng, init, **kw):
    args = dict(order=engine.DataOrder(64, 0), batch_size=16, init=init, mask=None, hp=HP,
                eval_steps=EVAL, goal=GOAL)
    args.update(kw)
    return eng.run_trial(**args)


def test_reasonable_lr_reaches_goal(eng, init):
    r = trial(eng, init)
    assert r.status == engine.COMPLETE
    assert r.steps_to_result in EVAL
    assert r.steps_to_result == r.eval_steps[-1] == r.steps
    assert r.eval_steps == EVAL[:len(r.eval_steps)]
    assert len(r.val_errors) == len(r.eval_steps)
    assert r.val_errors[-1] <= GOAL
    assert all(e > GOAL for e in r.val_errors[:-1])  # first evaluation at the goal, not a later one
    assert len(r.eval_steps) >= 2  # the goal is not met trivially at the first evaluation
    assert r.wall_time > 0 and r.message == ""


def test_huge_lr_is_infeasible(eng, init):
    r = trial(eng, init, hp={"learning_rate": 1e6})
    assert r.status == engine.INFEASIBLE
    assert r.steps_to_result is None
    assert r.message
    assert r.steps <= EVAL[0]


def test_same_trial_twice_is_identical(eng, init):
    a = trial(eng, init, hp={"learning_rate": 5e-4})
    b = trial(eng, init, hp={"learning_rate": 5e-4})
    assert a.val_errors == b.val_errors
    assert (a.status, a.steps_to_result, a.steps, a.eval_steps) == \
           (b.status, b.steps_to_result, b.steps, b.eval_steps)


def test_max_steps_truncation_is_incomplete(eng, init):
    r = trial(eng, init, hp={"learning_rate": 1e-6}, max_steps=20)
    assert r.status == engine.INCOMPLETE
    assert r.steps_to_result is None
    assert r.eval_steps == [8, 16]  # evaluations after max_steps are dropped
    assert r.steps == 16
    assert all(e > GOAL for e in r.val_errors)


def test_no_max_steps_runs_every_evaluation(eng, init):
    r = trial(eng, init, hp={"learning_rate": 1e-7}, eval_steps=[4, 8, 12])
    assert r.status == engine.INCOMPLETE
    assert r.eval_steps == [4, 8, 12] and r.steps == 12


def test_pruned_weights_stay_exactly_zero(eng, init, synthetic_data):
    scores = pruning.connection_sensitivity(eng.model, init, synthetic_data.x_train,
                                            synthetic_data.y_train)
    mask = pruning.masks_from_scores(scores, 0.7)
    r = trial(eng, init, mask=mask, hp={"learning_rate": 3e-3}, eval_steps=[8, 16, 24, 32],
              goal=0.0)
    assert r.steps > 0 and r.status in (engine.COMPLETE, engine.INCOMPLETE)
    changed = 0
    for w, v, m, w0 in zip(eng.weights, eng.velocities, mask, init):
        w = w.numpy()
        assert np.all(w[m == 0] == 0.0)
        assert np.all(v.numpy()[m == 0] == 0.0)
        changed += int((w[m == 1] != w0[m == 1]).sum())
    assert changed > 0.5 * sum(int(m.sum()) for m in mask)  # kept weights did train


def test_momentum_masked_weights_stay_zero(synthetic_data):
    """Same check through the momentum update (velocity must not leak into pruned entries)."""
    e = engine.Engine(synthetic_data, "simple_cnn", "momentum", "linear_decay")
    init = models.initial_weights(e.model, 1)
    rng = np.random.default_rng(0)
    mask = pruning.masks_from_scores([rng.random(w.shape) for w in init], 0.5)
    r = e.run_trial(order=engine.DataOrder(64, 0), batch_size=8, init=init, mask=mask,
                    hp={"learning_rate": 1e-3, "momentum": 0.9, "decay_steps": 10.0,
                        "end_factor": 0.1},
                    eval_steps=[6, 12], goal=0.0)
    assert r.steps == 12
    for w, m in zip(e.weights, mask):
        assert np.all(w.numpy()[m == 0] == 0.0)
    assert int(e.step.numpy()) == 12


def test_validation_error_matches_numpy(eng, init, synthetic_data):
    trial(eng, init, hp={"learning_rate": 3e-4}, eval_steps=[8], goal=0.0)
    logits = np.asarray(eng.model(synthetic_data.x_val, training=False))
    expected = float(np.mean(np.argmax(logits, axis=1) != synthetic_data.y_val))
    assert eng.validation_error() == (expected, True)  # exact: counts over the whole split
    assert 0.0 < expected < 1.0  # a non-trivial value (eval_chunk 25 does not divide 64)
    # and after resetting to the initial weights
    eng.reset(init, None, HP)
    logits = np.asarray(eng.model(synthetic_data.x_val, training=False))
    assert eng.validation_error() == (float(np.mean(np.argmax(logits, axis=1) != synthetic_data.y_val)), True)


def test_trial_result_curve_matches_validation_error(eng, init):
    r = trial(eng, init, hp={"learning_rate": 3e-4}, eval_steps=[8, 16], goal=0.0, early_exit=False)
    # the engine stops after its last evaluation: the error now is the last recorded one
    assert eng.validation_error() == (r.val_errors[-1], True)
    assert r.val_exact == [True, True]
    assert all(math.isfinite(e) for e in r.val_errors)


# ---------------------------------------------------------------- early-exit evaluation

@pytest.mark.parametrize("n", [1, 7, 64, 6000, 10000])
@pytest.mark.parametrize("goal", [0.0, 0.02, 0.1, 0.12, 0.4, 1 / 3, 0.9999])
def test_error_limit_is_the_exact_float_threshold(goal, n):
    k = engine.error_limit(goal, n)
    assert k / n <= goal or k == -1
    assert (k + 1) / n > goal


@pytest.mark.parametrize("lr", [3e-4, 1e-3, 3e-3, 1e6])
@pytest.mark.parametrize("goal", [0.0, 0.05, 0.3, 0.6])
def test_early_exit_changes_no_outcome(eng, init, lr, goal):
    """Same status, steps-to-result, steps and evaluation steps; exact points are identical and
    early-exited points are lower bounds of the exact error, marked as such."""
    fast = trial(eng, init, hp={"learning_rate": lr}, goal=goal, early_exit=True)
    slow = trial(eng, init, hp={"learning_rate": lr}, goal=goal, early_exit=False)
    assert (fast.status, fast.steps_to_result, fast.steps, fast.eval_steps) == \
        (slow.status, slow.steps_to_result, slow.steps, slow.eval_steps)
    assert all(slow.val_exact)
    for f, s, exact in zip(fast.val_errors, slow.val_errors, fast.val_exact):
        if exact:
            assert f == s or (math.isnan(f) and math.isnan(s))
        else:
            assert goal < f <= s  # stopped once the goal was missed: a lower bound above it


def test_evaluations_visit_the_hardest_examples_first_and_each_trial_starts_afresh(eng, init):
    trial(eng, init, hp={"learning_rate": 3e-4}, goal=0.0)  # runs to the budget: many evaluations
    order, margin = eng.val_order.numpy(), eng.val_margin.numpy()
    assert sorted(order) == list(range(64))  # a permutation of the split
    assert (np.diff(margin[order]) >= 0).all()  # smallest margin (most wrong) first
    eng.reset(init, None, HP)
    assert list(eng.val_order.numpy()) == list(range(64)) and not eng.val_margin.numpy().any()


@pytest.mark.parametrize("goal, exit_goal", [(0.05, 0.3), (0.0, 0.6), (0.3, 0.3)])
def test_looser_exit_goal_changes_no_outcome_and_keeps_the_curve_exact_up_to_it(eng, init, goal, exit_goal):
    fast = trial(eng, init, goal=goal, exit_goal=exit_goal)
    slow = trial(eng, init, goal=goal, early_exit=False)
    assert (fast.status, fast.steps_to_result, fast.steps, fast.eval_steps) == \
        (slow.status, slow.steps_to_result, slow.steps, slow.eval_steps)
    for f, s, exact in zip(fast.val_errors, slow.val_errors, fast.val_exact):
        assert f == s if exact else exit_goal < f <= s  # below exit_goal every point is exact
        if s <= exit_goal:
            assert exact


@pytest.mark.parametrize("lr", [3e-4, 1e-3, 1e6])
def test_eval_chunk_size_changes_no_outcome(synthetic_data, init, lr):
    """The chunk size is a speed setting: statuses, steps-to-result and every exact error are
    the same for a chunk of 1 and of the whole split; smaller chunks stop sooner on a miss."""
    runs = {c: trial(engine.Engine(synthetic_data, "simple_cnn", "sgd", "constant", eval_chunk=c),
                     init, hp={"learning_rate": lr}) for c in (1, 7, 64)}
    ref = runs[64]
    for c, r in runs.items():
        assert (r.status, r.steps_to_result, r.steps, r.eval_steps) == \
            (ref.status, ref.steps_to_result, ref.steps, ref.eval_steps)
        for a, b, exact in zip(r.val_errors, ref.val_errors, r.val_exact):
            if exact:
                assert a == b or (math.isnan(a) and math.isnan(b))
    if ref.status != engine.INFEASIBLE:
        assert runs[1].examples_evaluated < ref.examples_evaluated


def test_early_exit_reads_fewer_examples_when_far_from_goal(eng, init):
    eng.reset(init, None, HP)  # initial weights: about 3/4 of the 64 examples are wrong
    full, exact = eng.validation_error()
    assert exact and full > 0.5
    lower, exact = eng.validation_error(goal=0.1)
    assert not exact and 0.1 < lower < full  # stopped after a chunk or two of 25


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weight_marks_the_trial_infeasible(eng, init, bad):
    """A NaN or inf weight (however it got there) ends the trial as infeasible at once."""
    poisoned = [w.copy() for w in init]
    poisoned[-1][0] = bad  # last-layer bias
    r = trial(eng, init=poisoned, hp={"learning_rate": 1e-3})
    assert r.status == engine.INFEASIBLE and r.steps_to_result is None
    assert r.steps <= EVAL[0] and r.message


def test_weights_overflowing_on_a_chunks_last_step_are_caught(eng, init):
    """The loss of a step is computed before its update: a weight that overflows on the last
    update of a chunk is caught by the weight check, not left for the next chunk."""
    eng.reset(init, None, {"learning_rate": 1e-3})
    eng.weights[-1].assign(np.full(eng.weights[-1].shape, np.inf, np.float32))
    ran, finite, loss, weights_finite = eng._train(engine.DataOrder(64, 0).indices(0, 1, 16))
    assert not bool(weights_finite)


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_early_exit_decides_checkpoints_at_and_around_the_goal_like_full_counting(eng, init, offset):
    """Goal set so the checkpoint's error count is one below, exactly at, and one above the
    goal x N threshold: early exit and full counting make the same decision every time."""
    eng.reset(init, None, HP)
    full, _ = eng.validation_error()
    errors = round(full * eng.n_val)
    goal = (errors + offset) / eng.n_val  # offset 0: error == goal exactly (meets it)
    lower, exact = eng.validation_error(goal)
    assert (lower <= goal) == (full <= goal)
    if full <= goal:
        assert exact and lower == full  # a checkpoint that meets the goal is always counted in full


@pytest.mark.skipif(not data_mod.cache_path("mnist").exists(), reason="MNIST not fetched (make data)")
def test_eval_chunks_and_visiting_order_give_the_same_logits_on_real_mnist():
    """Real MNIST (not synthetic): chunks of 200 (the default) reproduce, bit for bit, the
    logits of chunks of 1000, and so does visiting the split in another order (evaluations go
    hardest-first), at initialisation and after training: neither can move a checkpoint across
    the goal."""
    d = data_mod.load("mnist")
    eng = engine.Engine(d, "simple_cnn", "momentum", "constant")
    eng.reset(models.initial_weights(eng.model, 0), None, {"learning_rate": 0.02, "momentum": 0.9})
    order = engine.DataOrder(len(d.y_train), 0)
    for start, end in [(0, 0), (0, 40)]:
        eng._train(order.indices(start, end, 64))
        logits = {c: np.concatenate([eng.model(d.x_val[i:i + c], training=False).numpy()
                                     for i in range(0, len(d.y_val), c)]) for c in (200, 1000)}
        np.testing.assert_array_equal(logits[200], logits[1000])
        perm = np.random.default_rng(end).permutation(len(d.y_val))
        shuffled = np.concatenate([eng.model(d.x_val[perm[i:i + 200]], training=False).numpy()
                                   for i in range(0, len(d.y_val), 200)])
        np.testing.assert_array_equal(shuffled, logits[200][perm])
