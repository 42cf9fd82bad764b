"""Train one trial to its goal: compiled multi-step training loops between evaluations.

The whole loop a reader needs is `Engine.run_trial`: reset the variables to the trial's start,
then alternate `_train_chunk` (many steps in one tf.while_loop) and `_count_errors` (the whole
validation split) until the goal, the step budget, or a non-finite loss/error.
Metaparameters, masks and optimiser state are tf.Variables, so one traced graph per batch size
serves every trial.
"""
import contextlib
import math
import time

import numpy as np
import tensorflow as tf

from . import models, optim

# What a trial is and sees, shared with the JAX engine (repro.engine_jax), re-exported here.
from .trial import (COMPLETE, INCOMPLETE, INFEASIBLE, DataOrder, TrialResult,  # noqa: F401
                    error_limit)


# A trial computes on one CPU thread wherever it runs. oneDNN splits its reductions by thread
# count, so the same trial on 1 and on 2 threads gives different bits (measured: Simple-CNN
# weights after 300 steps at B = 16 differ), and K* could then depend on --workers. Parallelism
# comes from worker processes instead, one trial each.
TRIAL_THREADS = 1


def pin_threads(threads=TRIAL_THREADS):
    """Give TensorFlow's CPU thread pools `threads` threads in this process.

    Returns False when TensorFlow already started here with another count (it cannot change
    after the first operation); the caller warns that this process's bits may differ."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        return True
    except RuntimeError:
        return tf.config.threading.get_intra_op_parallelism_threads() == threads


class Engine:
    """Compiled training and evaluation for one (dataset, model, optimizer, schedule)."""

    def __init__(self, data, model_name, optimizer, schedule, eval_chunk=200, strategy=None):
        # eval_chunk: validation examples per forward pass. Small chunks let an evaluation stop
        # sooner once the goal is missed; 200 gives logits bit-identical to 1000 on these CPU
        # kernels and is no slower per example (measured: 0.057 vs 0.067 ms/example).
        # Same seeds, same machine -> bit-identical curves (a no-op cost for these CPU kernels).
        tf.config.experimental.enable_op_determinism()
        self.optimizer, self.schedule = optimizer, schedule
        # With a tf.distribute strategy every variable is mirrored on its devices and each step
        # splits the global batch B over the replicas (see _replicated_step).
        self.strategy = strategy
        with strategy.scope() if strategy else contextlib.nullcontext():
            self.model = models.build(model_name, data.x_train.shape[1:])
            self.weights = self.model.trainable_variables
            zeros = [np.zeros(w.shape, np.float32) for w in self.weights]
            self.masks = [tf.Variable(z + 1.0, trainable=False) for z in zeros]
            self.velocities = [tf.Variable(z, trainable=False) for z in zeros]
            self.lr, self.momentum, self.decay_steps, self.end_factor = (
                tf.Variable(0.0, trainable=False) for _ in range(4))
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.x_train, self.y_train, self.x_val, self.y_val = _resident(data)
        self.n_val, self.eval_chunk = len(data.y_val), eval_chunk
        # The order an evaluation visits the validation split: by each example's margin at the
        # last evaluation that saw it (true-class logit minus the best other; wrong ones are
        # negative), smallest first. The error count over the whole split does not depend on
        # the order, so no outcome changes; but the examples a checkpoint gets wrong are mostly
        # those the last one got wrong or nearly wrong, so a miss is found sooner.
        self.val_order = tf.Variable(tf.range(self.n_val, dtype=tf.int32), trainable=False)
        self.val_margin = tf.Variable(tf.zeros(self.n_val, tf.float32), trainable=False)
        self.examples_evaluated = 0  # running count, for the cost report
        # One trace serves every chunk length and batch size (no retracing per trial).
        self._train = tf.function(self._train_chunk,
                                  input_signature=[tf.TensorSpec([None, None], tf.int32)])
        self._errors = tf.function(self._count_errors,
                                   input_signature=[tf.TensorSpec([], tf.int32)])

    # -- compiled parts -------------------------------------------------------------------
    def _train_chunk(self, idx):
        """Run len(idx) steps; stop early at the first non-finite loss."""
        def body(i, finite, _):
            if self.strategy is not None:
                loss = self._replicated_step(idx[i])
                return i + 1, tf.math.is_finite(loss), loss
            x, y = tf.gather(self.x_train, idx[i]), tf.gather(self.y_train, idx[i])
            with tf.GradientTape() as tape:
                logits = self.model(x, training=True)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
            grads = [g * m for g, m in zip(tape.gradient(loss, self.weights), self.masks)]
            lr = optim.learning_rate(self.step, self.lr, self.schedule,
                                     self.decay_steps, self.end_factor)
            optim.apply_update(self.optimizer, self.weights, self.velocities, grads, lr,
                               self.momentum)
            self.step.assign_add(1)
            return i + 1, tf.math.is_finite(loss), loss

        n = tf.shape(idx)[0]
        ran, finite, loss = tf.while_loop(lambda i, finite, _: (i < n) & finite, body,
                                          (tf.constant(0), tf.constant(True), tf.constant(0.0)))
        # A weight can overflow on the chunk's last update while that step's loss was finite.
        weights_finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(w)) for w in self.weights])
        return ran, finite, loss, weights_finite

    def _replicated_step(self, rows):
        """One step of global batch `rows` split evenly over the strategy's replicas.

        Each replica takes its contiguous slice, computes the gradient of its share of the
        global mean loss (sum over its examples / B), the gradients are summed across replicas
        (= the gradient of the mean over all B examples), and the TF1 update is applied to every
        copy in cross-replica context. Same mathematics as one device; only the order of the
        floating-point sums differs.
        """
        n = self.strategy.num_replicas_in_sync
        total = tf.cast(tf.shape(rows)[0], tf.float32)

        def replica_fn(rows):
            ctx = tf.distribute.get_replica_context()
            per = tf.shape(rows)[0] // n
            mine = rows[ctx.replica_id_in_sync_group * per:][:per]
            x, y = tf.gather(self.x_train, mine), tf.gather(self.y_train, mine)
            with tf.GradientTape() as tape:
                logits = self.model(x, training=True)
                loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)) / total
            grads = [g * m for g, m in zip(tape.gradient(loss, self.weights), self.masks)]
            grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
            loss = ctx.all_reduce(tf.distribute.ReduceOp.SUM, loss)
            ctx.merge_call(self._apply_replicated, args=(grads,))
            return loss

        per_replica = self.strategy.run(replica_fn, args=(rows,))
        return self.strategy.experimental_local_results(per_replica)[0]

    def _apply_replicated(self, strategy, grads):
        """The TF1 update of every mirrored weight (merge_call: cross-replica context)."""
        lr = optim.learning_rate(self.step, self.lr, self.schedule, self.decay_steps, self.end_factor)
        for w, v, g in zip(self.weights, self.velocities, grads):
            # keras.Variable wraps the tf.distribute MirroredVariable as `_value`
            strategy.extended.update(getattr(w, "_value", w), _tf1_update, group=False,
                                     args=(v, g, lr, self.momentum, self.optimizer))
        self.step.assign_add(1)

    def _count_errors(self, limit):
        """Misclassified validation examples, chunk by chunk; stops once errors > limit.

        Returns (errors, examples seen, all logits finite). With limit >= n_val it is the
        exact count over the whole split.
        """
        def body(start, errors, finite):
            rows = self.val_order[start:start + self.eval_chunk]
            x, y = tf.gather(self.x_val, rows), tf.gather(self.y_val, rows)
            logits = self.model(x, training=False)
            wrong = tf.math.not_equal(tf.argmax(logits, axis=1, output_type=tf.int32), y)
            true = tf.gather(logits, y, batch_dims=1)
            other = tf.reduce_max(logits - 1e30 * tf.one_hot(y, tf.shape(logits)[1]), axis=1)
            self.val_margin.scatter_nd_update(rows[:, None], true - other)
            finite = finite & tf.reduce_all(tf.math.is_finite(logits))
            return start + self.eval_chunk, errors + tf.reduce_sum(tf.cast(wrong, tf.int32)), finite

        start, errors, finite = tf.while_loop(
            lambda s, e, f: (s < self.n_val) & (e <= limit) & f, body,
            (tf.constant(0), tf.constant(0), tf.constant(True)))
        # Examples not visited this time keep their last margin (0 if never seen).
        self.val_order.assign(tf.cast(tf.argsort(self.val_margin, stable=True), tf.int32))
        return errors, tf.minimum(start, self.n_val), finite

    # -- one trial ------------------------------------------------------------------------
    def reset(self, init, mask, hp):
        """Put the variables at a trial's start: masked initial weights, zero velocity."""
        mask = mask or [np.ones(w.shape, np.float32) for w in self.weights]
        for w, m, v, w0, m0 in zip(self.weights, self.masks, self.velocities, init, mask):
            w.assign(w0 * m0)
            m.assign(m0)
            v.assign(np.zeros(w.shape, np.float32))
        self.lr.assign(hp["learning_rate"])
        self.momentum.assign(hp.get("momentum", 0.0))
        self.decay_steps.assign(hp.get("decay_steps", 1.0))
        self.end_factor.assign(hp.get("end_factor", 1.0))
        self.step.assign(0)
        # Each trial starts from the split's own order: a trial never depends on the one before.
        self.val_order.assign(tf.range(self.n_val, dtype=tf.int32))
        self.val_margin.assign(tf.zeros(self.n_val, tf.float32))

    def train_steps(self, order, start, end, batch_size):
        """Run steps [start, end) of `order`; returns (steps run, loss finite, weights finite)."""
        ran, finite, _, weights_finite = self._train(order.indices(start, end, batch_size))
        return int(ran), bool(finite), bool(weights_finite)

    def validation_error(self, goal=None):
        """Error on the validation split (NaN if the logits are not finite) and whether it is exact.

        With `goal`, counting stops as soon as the errors exceed goal x N: the checkpoint has
        then failed whatever the rest of the split holds, and errors/N is a lower bound.
        """
        limit = self.n_val if goal is None else error_limit(goal, self.n_val)
        errors, seen, finite = self._errors(tf.constant(limit))
        self.examples_evaluated += int(seen)
        if not bool(finite):
            return math.nan, True
        return float(errors) / self.n_val, int(seen) == self.n_val

    def state_variables(self):
        """Every variable `reset` sets or a trial changes: a trial's whole state (see save_state)."""
        return [*self.weights, *self.masks, *self.velocities, self.lr, self.momentum,
                self.decay_steps, self.end_factor, self.step, self.val_order, self.val_margin,
                *self.model.non_trainable_variables]

    def save_state(self):
        """This trial's state as numpy arrays: `load_state` puts it back bit for bit, so trials
        can take turns on one engine (a race) and each computes exactly as if run alone."""
        return [v.numpy() for v in self.state_variables()]

    def load_state(self, state):
        for v, a in zip(self.state_variables(), state):
            v.assign(a)

    def state_bytes(self):
        """Bytes of one saved trial state (for sizing a race's groups)."""
        return sum(int(np.prod(v.shape)) * np.dtype(str(getattr(v.dtype, "name", v.dtype))).itemsize
                   for v in self.state_variables())

    def start_trial(self, *, order, batch_size, init, mask, hp, goal, early_exit=True,
                    exit_goal=None, keep_state=False):
        """A trial at its start, to be advanced one evaluation at a time (TrialRun.advance)."""
        return TrialRun(self, order, batch_size, init, mask, hp, goal, early_exit, exit_goal,
                        keep_state)

    def run_trial(self, *, order, batch_size, init, mask, hp, eval_steps, goal, max_steps=None,
                  early_exit=True, exit_goal=None):
        """Train from `init` (masked by `mask`) with metaparameters `hp` until the goal.

        Evaluates the validation split at each of `eval_steps` and stops at the first evaluation
        with error <= goal. With `early_exit`, an evaluation stops counting once the errors
        exceed `exit_goal` (default: `goal`; a looser one keeps the curve exact up to it, so the
        run answers that goal too): same outcome, fewer examples; that point is a lower bound.
        `exit_goal` alone (not None) also turns early exit on.
        """
        t0 = time.perf_counter()
        run = self.start_trial(order=order, batch_size=batch_size, init=init, mask=mask, hp=hp,
                               goal=goal, early_exit=early_exit, exit_goal=exit_goal)
        for s in [s for s in eval_steps if max_steps is None or s <= max_steps]:
            if run.advance(s):
                break
        return run.result(wall_time=time.perf_counter() - t0)


class TrialRun:
    """One trial's progress along the evaluation schedule: `advance(s)` trains to step s and
    evaluates there. With `keep_state`, the trial's variables are saved after each advance and
    loaded before the next, so several trials can take turns on one engine (repro.race), each
    bit for bit as if it ran alone."""

    def __init__(self, engine, order, batch_size, init, mask, hp, goal, early_exit, exit_goal,
                 keep_state=False):
        if exit_goal is not None:
            early_exit = True
        self.engine, self.order, self.batch_size, self.goal = engine, order, batch_size, goal
        self.exit_at = (max(goal, exit_goal if exit_goal is not None else goal)
                        if early_exit else None)
        self.done, self.curve, self.status, self.message = 0, [], INCOMPLETE, ""
        self.examples_evaluated, self.keep_state = 0, keep_state
        self.wall_before = 0.0  # seconds this trial trained before a restored checkpoint
        self.wall = 0.0         # seconds it spent in `advance`, wall_before included
        engine.reset(init, mask, hp)
        self.state = engine.save_state() if keep_state else None

    @property
    def finished(self):
        return self.status != INCOMPLETE

    def advance(self, s):
        """Train steps [done, s), evaluate at s; True once the trial has its outcome
        (goal met: complete; non-finite loss, weights or logits: infeasible)."""
        eng, t0 = self.engine, time.perf_counter()
        if self.keep_state:
            eng.load_state(self.state)
        ran, finite, loss, weights_finite = eng._train(self.order.indices(self.done, s, self.batch_size))
        self.done += int(ran)
        if not bool(finite):
            self.status, self.message = INFEASIBLE, f"training loss {float(loss)} at step {self.done}"
        elif not bool(weights_finite):
            self.status, self.message = INFEASIBLE, f"non-finite weights after step {self.done}"
        else:
            before = eng.examples_evaluated
            err, exact = eng.validation_error(self.exit_at)
            self.examples_evaluated += eng.examples_evaluated - before
            self.curve.append((s, err, exact))
            if math.isnan(err):
                self.status, self.message = INFEASIBLE, f"non-finite logits at step {s}"
            elif err <= self.goal:
                self.status = COMPLETE
        if self.keep_state:
            self.state = None if self.finished else eng.save_state()
        self.wall += time.perf_counter() - t0
        return self.finished

    def snapshot(self):
        """(progress, state) of an unfinished trial made with keep_state: `restore` on a fresh
        TrialRun of the same trial continues it bit for bit (a race checkpoint, repro.checkpoint).
        `progress` is JSON-able; `state` the engine's variables as numpy arrays."""
        if not self.keep_state or self.finished:
            raise ValueError("only an unfinished trial made with keep_state=True has a snapshot")
        return {"done": self.done, "curve": [list(c) for c in self.curve],
                "examples_evaluated": self.examples_evaluated, "wall": self.wall}, self.state

    def restore(self, progress, state):
        """Continue from a `snapshot` of the same trial (this TrialRun was just started)."""
        self.done, self.curve = int(progress["done"]), [(int(s), float(e), bool(x))
                                                        for s, e, x in progress["curve"]]
        self.examples_evaluated = int(progress["examples_evaluated"])
        self.wall = self.wall_before = float(progress["wall"])
        self.state = list(state)

    def result(self, wall_time):
        """The outcome; `wall_time`: seconds of this run's training (a restored trial adds
        what it trained before its checkpoint)."""
        wall_time += self.wall_before
        complete = self.status == COMPLETE
        return TrialResult(
            status=self.status,
            steps_to_result=self.curve[-1][0] if complete else None,
            steps=self.done,
            eval_steps=[c[0] for c in self.curve],
            val_errors=[c[1] for c in self.curve],
            val_exact=[c[2] for c in self.curve],
            examples_evaluated=self.examples_evaluated,
            wall_time=wall_time,
            message=self.message,
        )


_RESIDENT = {}  # id(dataset) -> its splits as tensors, shared by every engine in the process


def _resident(data):
    """The dataset's splits as constant tensors, made once per process: engines of several
    workloads on one dataset (SGD and Momentum on MNIST) share one copy in memory."""
    key = id(data)
    if key not in _RESIDENT or _RESIDENT[key][0] is not data:
        _RESIDENT[key] = (data, tuple(tf.constant(a) for a in
                                      (data.x_train, data.y_train, data.x_val, data.y_val)))
    return _RESIDENT[key][1]


def _tf1_update(w, v, g, lr, momentum, optimizer):
    """optim.apply_update for one (device copy of a) weight."""
    optim.apply_update(optimizer, [w], [v], [g], lr, momentum)
