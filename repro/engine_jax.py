"""The JAX engine: the TensorFlow engine's trials (repro.engine), computed by jitted, vmapped steps.

Chosen by KERAS_BACKEND=jax (repro.backend). Same contract as repro.engine: `Engine.start_trial`
gives a `TrialRun` whose `advance(s)` trains to step s and evaluates there, `run_trial` runs one
trial to its outcome, and the models (Keras layers called through `stateless_call`), initial
weights, SNIP masks, data order (repro.trial.DataOrder), TF1 optimiser updates (repro.optim's
formulas), learning-rate schedules, hardest-first evaluation order and early exit are the same.
What differs is where a trial's state lives and how many trials one step computes:

* a trial carries its whole state (weights, masks, velocities, metaparameters, step counter,
  validation order and margins: `_Slot`) as arrays of its own; the engine holds none, so any
  number of trials can be in flight at once;
* every computation runs `slots` trials side by side: `_train_one` (a lax.while_loop over the
  steps of a chunk, stopping a trial at its first non-finite loss) and `_evaluate_one` (a
  lax.while_loop over validation chunks in the trial's hardest-first order, stopping once its
  errors pass its limit) are vmapped over a leading slot axis and jitted (once per batch size).
  A trial alone fills one slot and leaves the others empty; a race (repro.race) calls
  `Engine.prefetch` with every trial of its round, which fills the slots with them, so the
  round is one vmapped call per `slots` trials. Trials that leave a race leave their slot
  masked out (nothing is compacted, so the others stay where they are).

A batch too large for one device (repro.plan.placement: "mirrored") is split over several:
the engine's `strategy` is then a jax.sharding.Mesh with an axis "data" (repro.devices.mirrored,
the layout keras.distribution.DataParallel uses on JAX). The device-resident data and the
trial states are copied to every device of the mesh, each training step's gathered batch is
sharded along its batch axis over "data" (`_train_one`, under the vmap over slots), so each
device computes its share and XLA all-reduces the gradients; evaluation runs replicated. The
global batch is B either way, so K* means the same; the bits are not those of one device (the
gradient is summed in another order: equal to float rounding, tests/test_engine_jax.py), so
such a trial's run id names its replica count (repro.backend.identity). Without a strategy
nothing of this is traced: one device computes as before.

Exactness: on XLA's CPU kernels a slot's numbers depend neither on what the other slots hold
(empty, diverged, another trial) nor on its position, so a trial's bits are the same alone and
in any race (tests/test_engine_jax.py checks both, and a race against its trials run alone).
Each slot gathers its own copy of the batch: with one shared input, ResNet-8's first kernel
gradient came out position-dependent. The slot count itself changes the kernels XLA picks, so
it is fixed (repro.backend.JAX_SLOTS) and part of a JAX trial's identity.
"""
import dataclasses
import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from . import backend, models
from .trial import COMPLETE, INCOMPLETE, INFEASIBLE, DataOrder, TrialResult, error_limit  # noqa: F401

CHUNK_STEPS = 128  # training steps one call may run: index arrays are padded to it (one trace)
HP_NAMES = ("learning_rate", "momentum", "decay_steps", "end_factor")
HP_DEFAULTS = {"momentum": 0.0, "decay_steps": 1.0, "end_factor": 1.0}


# ------------------------------------------------------------------ one slot's mathematics
def _learning_rate(schedule, st):
    """repro.optim.learning_rate for the update taken at st["step"] (0-based, before it)."""
    if schedule == "constant":
        return st["lr"]
    frac = jnp.minimum(st["step"].astype(jnp.float32), st["decay_steps"]) / st["decay_steps"]
    end = st["lr"] * st["end_factor"]
    return (st["lr"] - end) * (1.0 - frac) + end


def _update(optimizer, w, v, g, lr, momentum):
    """repro.optim.apply_update for one weight: (new weight, new velocity); TF1 semantics."""
    if optimizer == "sgd":
        return w - lr * g, v
    v = momentum * v + g
    step = g + momentum * v if optimizer == "nesterov" else v
    return w - lr * step, v


def _cross_entropy(logits, y):
    """Per-example sparse softmax cross-entropy."""
    true = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
    return jax.nn.logsumexp(logits, axis=1) - true


def _train_one(model, optimizer, schedule, batch_sharding, x_train, y_train, st, live, idx, n):
    """One slot: run steps idx[:n] (rows of the training split) from state `st` unless not
    `live`; stop after the first step whose loss is not finite (its update is applied, as on
    TensorFlow). `batch_sharding` (None: one device) splits each step's gathered batch along
    its batch axis over the devices of a data-parallel mesh (XLA then all-reduces the
    gradients). Returns (state, steps run, loss finite, last loss)."""
    def loss_fn(w, x, y):
        logits, _ = model.stateless_call(w, [], x, training=True)
        return jnp.mean(_cross_entropy(logits, y))

    def body(carry):
        i, _, _, st = carry
        rows = idx[i]
        x, y = x_train[rows], y_train[rows]
        if batch_sharding is not None:  # (under vmap the slot axis stays unsplit)
            x, y = (jax.lax.with_sharding_constraint(a, batch_sharding) for a in (x, y))
        loss, grads = jax.value_and_grad(loss_fn)(st["w"], x, y)
        lr = _learning_rate(schedule, st)
        new = [_update(optimizer, w, v, g * m, lr, st["momentum"])
               for w, v, g, m in zip(st["w"], st["v"], grads, st["m"])]
        st = {**st, "w": [w for w, _ in new], "v": [v for _, v in new], "step": st["step"] + 1}
        return i + 1, jnp.isfinite(loss), loss, st

    def cond(carry):
        i, finite, _, _ = carry
        return (i < n) & finite & live

    i, finite, loss, st = jax.lax.while_loop(
        cond, body, (jnp.int32(0), jnp.bool_(True), jnp.float32(0.0), st))
    return st, i, finite, loss


def _weights_finite(w):
    """Whether every weight of one slot is finite."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in w]))


def _evaluate_one(model, chunk, x_val, y_val, st, limit, live):
    """One slot: count misclassified validation examples chunk by chunk in the slot's order
    (smallest margin first), stopping once errors > `limit` (or at a non-finite logit); margins
    of the examples seen are updated and the order re-sorted by them. A slot not `live` keeps
    its state. Returns (state, errors, examples seen, logits finite)."""
    n_val = x_val.shape[0]

    def body(carry):
        start, errors, finite, margin = carry
        pos = start + jnp.arange(chunk)
        valid = pos < n_val  # the last chunk may be short
        rows = st["val_order"][jnp.minimum(pos, n_val - 1)]
        logits, _ = model.stateless_call(st["w"], [], x_val[rows], training=False)
        y = y_val[rows]
        wrong = (jnp.argmax(logits, axis=1).astype(jnp.int32) != y) & valid
        true = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
        other = jnp.max(logits - 1e30 * jax.nn.one_hot(y, logits.shape[1], dtype=logits.dtype), axis=1)
        margin = margin.at[jnp.where(valid, rows, n_val)].set(true - other, mode="drop")
        finite = finite & jnp.all(jnp.isfinite(logits) | ~valid[:, None])
        return start + chunk, errors + jnp.sum(wrong.astype(jnp.int32)), finite, margin

    def cond(carry):
        start, errors, finite, _ = carry
        return (start < n_val) & (errors <= limit) & finite & live

    start, errors, finite, margin = jax.lax.while_loop(
        cond, body, (jnp.int32(0), jnp.int32(0), jnp.bool_(True), st["val_margin"]))
    order = jnp.argsort(margin, stable=True).astype(jnp.int32)
    new = {**st, "val_margin": margin, "val_order": order}
    new = jax.tree.map(lambda a, b: jnp.where(live, a, b), new, st)
    return new, errors, jnp.minimum(start, n_val), finite


# ------------------------------------------------------------------ trial states in slots
@dataclasses.dataclass(frozen=True)
class _Slot:
    """Where a trial's state is: slot `slot` of the stacked state `stacked` (leading axis)."""

    stacked: dict
    slot: int

    def arrays(self):
        """The trial's state as numpy arrays, in `_state_leaves` order."""
        return [np.asarray(a[self.slot]) for a in _state_leaves(self.stacked)]


def _state_leaves(st):
    """A state's arrays in a fixed order: weights, masks, velocities, the four metaparameters,
    step, validation order, validation margins (as repro.engine.Engine.state_variables)."""
    return [*st["w"], *st["m"], *st["v"], st["lr"], st["momentum"], st["decay_steps"],
            st["end_factor"], st["step"], st["val_order"], st["val_margin"]]


def _state_from_leaves(leaves, n_weights):
    """The inverse of `_state_leaves`."""
    w, m, v = (list(leaves[k * n_weights:(k + 1) * n_weights]) for k in range(3))
    lr, momentum, decay_steps, end_factor, step, val_order, val_margin = leaves[3 * n_weights:]
    return {"w": w, "m": m, "v": v, "lr": lr, "momentum": momentum, "decay_steps": decay_steps,
            "end_factor": end_factor, "step": step, "val_order": val_order, "val_margin": val_margin}


@dataclasses.dataclass
class _Outcome:
    """What one advance computed for a trial, before the trial takes it (TrialRun.advance)."""

    step: int             # the evaluation step it trained to
    state: _Slot
    ran: int
    finite: bool
    loss: float
    weights_finite: bool
    errors: int
    seen: int
    logits_finite: bool
    seconds: float        # its share of the call's wall time


_RESIDENT = {}  # (id(dataset), placement) -> its splits on the device(s), shared by every engine


def _resident(data, replicated=None):
    """The dataset's splits as device arrays, placed once per process: on the default device,
    or copied to every device of a mesh (`replicated`: its NamedSharding)."""
    key = (id(data), replicated)
    if key not in _RESIDENT or _RESIDENT[key][0] is not data:
        splits = (data.x_train, data.y_train, data.x_val, data.y_val)
        _RESIDENT[key] = (data, tuple(jnp.asarray(a) for a in splits) if replicated is None
                          else tuple(jax.device_put(a, replicated) for a in splits))
    return _RESIDENT[key][1]


def _data_mesh(strategy):
    """(mesh, replicas) of an Engine's `strategy`: (None, 1) for one device, else a
    jax.sharding.Mesh with an axis "data" (repro.devices.mirrored) and its device count."""
    if strategy is None:
        return None, 1
    if not isinstance(strategy, jax.sharding.Mesh) or "data" not in strategy.axis_names:
        raise ValueError(f"the JAX engine splits a batch over a jax.sharding.Mesh with an axis "
                         f"'data' (repro.devices.mirrored), not {strategy!r}")
    replicas = strategy.shape["data"]
    return (strategy, replicas) if replicas > 1 else (None, 1)


class Engine:
    """Jitted, vmapped training and evaluation for one (dataset, model, optimizer, schedule).

    `strategy`: None (one device), or a data-parallel mesh (repro.devices.mirrored) over
    whose axis "data" each training step's batch is split (`_train_one`)."""

    def __init__(self, data, model_name, optimizer, schedule, eval_chunk=200, strategy=None,
                 slots=None):
        self.optimizer, self.schedule = optimizer, schedule
        self.mesh, self.replicas = _data_mesh(strategy)
        # on a mesh: data and trial states on every device, each step's batch split over "data"
        self._replicated = self._split = None
        if self.mesh is not None:
            self._replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
            self._split = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec("data"))
        self.slots = slots or backend.JAX_SLOTS
        self.model = models.build(model_name, data.x_train.shape[1:])
        if self.model.non_trainable_variables:
            raise ValueError(f"{model_name} has non-trainable variables; this engine has none")
        self.shapes = [tuple(v.shape) for v in self.model.trainable_variables]
        self.data = _resident(data, self._replicated)
        self.n_val, self.eval_chunk = len(data.y_val), eval_chunk
        self.examples_evaluated = 0  # running count, for the cost report
        train = functools.partial(_train_one, self.model, optimizer, schedule, self._split)
        self._train = jax.jit(jax.vmap(train, in_axes=(None, None, 0, 0, 0, None)))
        evaluate = functools.partial(_evaluate_one, self.model, eval_chunk)
        self._evaluate = jax.jit(jax.vmap(evaluate, in_axes=(None, None, 0, 0, 0)))
        self._finite = jax.jit(jax.vmap(_weights_finite))

    def _placed(self, *trees):
        """`trees` as the jitted calls take them: as they are on one device; on a mesh, copied
        to each of its devices (a no-op for arrays already there)."""
        if self._replicated is None:
            return trees
        return tuple(jax.device_put(t, self._replicated) for t in trees)

    # -- states ---------------------------------------------------------------------------
    def start_state(self, init, mask, hp):
        """A trial's state at its start, in a one-slot stack: masked initial weights, zero velocity."""
        mask = mask or [np.ones(s, np.float32) for s in self.shapes]
        f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
        hps = {k: f32(hp.get(k, HP_DEFAULTS.get(k))) for k in HP_NAMES}
        st = {"w": [f32(w) * f32(m) for w, m in zip(init, mask)], "m": [f32(m) for m in mask],
              "v": [np.zeros(s, np.float32) for s in self.shapes], "lr": hps["learning_rate"],
              "momentum": hps["momentum"], "decay_steps": hps["decay_steps"],
              "end_factor": hps["end_factor"], "step": np.int32(0),
              "val_order": np.arange(self.n_val, dtype=np.int32),
              "val_margin": np.zeros(self.n_val, np.float32)}
        return _Slot(jax.tree.map(lambda a: jnp.asarray(a)[None], st), 0)

    def state_from_arrays(self, arrays):
        """A state saved by `_Slot.arrays` (a checkpoint), in a one-slot stack."""
        leaves = [jnp.asarray(a)[None] for a in arrays]
        return _Slot(_state_from_leaves(leaves, len(self.shapes)), 0)

    def state_bytes(self):
        """Bytes of one trial's state (for sizing a race's groups)."""
        weights = sum(math.prod(s) for s in self.shapes)
        return 4 * (3 * weights + 5) + 8 * self.n_val

    def _stack(self, states):
        """(stacked state of `self.slots` slots, slot of each of `states`): the stack they are
        already in when they all are in one full stack, else a new one (empty slots zero)."""
        first = states[0].stacked
        if all(s.stacked is first for s in states) and first["step"].shape[0] == self.slots:
            return first, [s.slot for s in states]
        empty = self.slots - len(states)
        leaves = [jnp.stack([leaf[s.slot] for s, leaf in zip(states, group)]
                            + [jnp.zeros_like(group[0][states[0].slot])] * empty)
                  for group in zip(*[_state_leaves(s.stacked) for s in states])]
        return _state_from_leaves(leaves, len(self.shapes)), list(range(len(states)))

    # -- advancing trials -----------------------------------------------------------------
    def prefetch(self, runs, s):
        """Train every one of `runs` (TrialRuns of this engine) to step s and evaluate there,
        `self.slots` at a time per vmapped call; each run takes its outcome in `advance(s)`.
        Runs at different steps, batch sizes or data orders go in separate calls."""
        groups = {}
        for run in runs:
            groups.setdefault((id(run.order), run.batch_size, run.done), []).append(run)
        for group in groups.values():
            for k in range(0, len(group), self.slots):
                part = group[k:k + self.slots]
                t0 = time.perf_counter()
                outcomes = self._advance(part, s)
                share = (time.perf_counter() - t0) / len(part)
                for run, out in zip(part, outcomes):
                    run.pending = dataclasses.replace(out, seconds=share)

    def _advance(self, runs, s):
        """`_Outcome`s of training `runs` (at one step, batch size and order; at most
        `self.slots`) from their step to s and evaluating those still finite there."""
        stacked, slots = self._stack([r.state for r in runs])
        live = np.zeros(self.slots, bool)
        live[slots] = True
        order, batch_size, done = runs[0].order, runs[0].batch_size, runs[0].done
        if batch_size % self.replicas:
            raise ValueError(f"a batch of {batch_size} does not split evenly over "
                             f"{self.replicas} devices")
        ran = np.zeros(self.slots, np.int64)
        finite = np.ones(self.slots, bool)
        loss = np.zeros(self.slots, np.float32)
        for start in range(done, s, CHUNK_STEPS):
            active = live & finite
            if not active.any():
                break
            end = min(s, start + CHUNK_STEPS)
            idx = np.zeros((CHUNK_STEPS, batch_size), np.int32)
            idx[:end - start] = order.indices(start, end, batch_size)
            per_slot = np.broadcast_to(idx, (self.slots, *idx.shape))
            stacked, r, f, l_ = self._train(*self.data[:2], *self._placed(
                stacked, jnp.asarray(active), jnp.asarray(per_slot), jnp.int32(end - start)))
            r, f, l_ = np.asarray(r), np.asarray(f), np.asarray(l_)
            ran[active] += r[active]
            finite[active] = f[active]
            loss[active] = l_[active]
        stacked, = self._placed(stacked)  # (a stack no call has trained yet)
        weights_finite = np.asarray(self._finite(stacked["w"]))
        limits = np.full(self.slots, self.n_val, np.int32)
        for run, slot in zip(runs, slots):
            if run.exit_at is not None:
                limits[slot] = error_limit(run.exit_at, self.n_val)
        evaluate = live & finite & weights_finite
        errors, seen, logits_finite = (np.zeros(self.slots, int),) * 3
        if evaluate.any():
            stacked, *counts = self._evaluate(*self.data[2:], *self._placed(
                stacked, jnp.asarray(limits), jnp.asarray(evaluate)))
            errors, seen, logits_finite = (np.asarray(c) for c in counts)
        return [_Outcome(step=s, state=_Slot(stacked, slot), ran=int(ran[slot]),
                         finite=bool(finite[slot]), loss=float(loss[slot]),
                         weights_finite=bool(weights_finite[slot]), errors=int(errors[slot]),
                         seen=int(seen[slot]), logits_finite=bool(logits_finite[slot]), seconds=0.0)
                for slot in slots]

    # -- throughput (repro.throughput's probe) --------------------------------------------
    def _full_stack(self):
        """`self.slots` trials at their start (trial seeds 0, 1, ...), every slot live."""
        hp = {"learning_rate": 1e-3, "momentum": 0.9}
        starts = [self.start_state(models.initial_weights(self.model, i), None, hp)
                  for i in range(self.slots)]
        return self._placed(self._stack(starts)[0], jnp.ones(self.slots, bool))

    def time_steps(self, order, batch_size, steps=CHUNK_STEPS):
        """Seconds of `steps` training steps of `self.slots` trials side by side at
        `batch_size`, calls of CHUNK_STEPS as a race makes them, after a call that compiles."""
        stacked, live = self._full_stack()
        idx = np.zeros((self.slots, CHUNK_STEPS, batch_size), np.int32)
        idx[:] = order.indices(0, CHUNK_STEPS, batch_size)
        idx, one = self._placed(jnp.asarray(idx), jnp.int32(1))
        jax.block_until_ready(self._train(*self.data[:2], stacked, live, idx, one))
        t0 = time.perf_counter()
        for start in range(0, steps, CHUNK_STEPS):
            n, = self._placed(jnp.int32(min(CHUNK_STEPS, steps - start)))
            stacked = self._train(*self.data[:2], stacked, live, idx, n)[0]
        jax.block_until_ready(stacked)
        return time.perf_counter() - t0

    def time_evaluation(self):
        """Seconds of one whole validation pass of `self.slots` trials side by side, after a
        pass that compiles."""
        stacked, live = self._full_stack()
        limits, = self._placed(jnp.full(self.slots, self.n_val, jnp.int32))
        jax.block_until_ready(self._evaluate(*self.data[2:], stacked, limits, live))
        t0 = time.perf_counter()
        jax.block_until_ready(self._evaluate(*self.data[2:], stacked, limits, live))
        return time.perf_counter() - t0

    # -- one trial ------------------------------------------------------------------------
    def start_trial(self, *, order, batch_size, init, mask, hp, goal, early_exit=True,
                    exit_goal=None, keep_state=False):
        """A trial at its start, to be advanced one evaluation at a time (TrialRun.advance)."""
        return TrialRun(self, order, batch_size, init, mask, hp, goal, early_exit, exit_goal,
                        keep_state)

    def run_trial(self, *, order, batch_size, init, mask, hp, eval_steps, goal, max_steps=None,
                  early_exit=True, exit_goal=None):
        """Train from `init` (masked by `mask`) with metaparameters `hp` until the goal, alone
        (one slot): as repro.engine.Engine.run_trial."""
        t0 = time.perf_counter()
        run = self.start_trial(order=order, batch_size=batch_size, init=init, mask=mask, hp=hp,
                               goal=goal, early_exit=early_exit, exit_goal=exit_goal)
        for s in [s for s in eval_steps if max_steps is None or s <= max_steps]:
            if run.advance(s):
                break
        return run.result(wall_time=time.perf_counter() - t0)


class TrialRun:
    """One trial's progress along the evaluation schedule, as repro.engine.TrialRun: `advance(s)`
    trains to step s and evaluates there. Its state is its own (`_Slot`), so trials never
    disturb one another; `keep_state` only allows `snapshot` (a race checkpoint)."""

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
        self.wall = 0.0         # seconds it spent in `advance` (its share of shared calls), wall_before included
        self.state = engine.start_state(init, mask, hp)
        self.pending = None     # an outcome computed ahead by Engine.prefetch

    @property
    def finished(self):
        return self.status != INCOMPLETE

    def advance(self, s):
        """Train steps [done, s), evaluate at s; True once the trial has its outcome
        (goal met: complete; non-finite loss, weights or logits: infeasible)."""
        t0, shared = time.perf_counter(), 0.0
        if self.pending is None or self.pending.step != s:
            self.engine.prefetch([self], s)
        else:
            shared = self.pending.seconds
        out, self.pending = self.pending, None
        self.state = out.state
        self.done += out.ran
        if not out.finite:
            self.status, self.message = INFEASIBLE, f"training loss {out.loss} at step {self.done}"
        elif not out.weights_finite:
            self.status, self.message = INFEASIBLE, f"non-finite weights after step {self.done}"
        else:
            self.engine.examples_evaluated += out.seen
            self.examples_evaluated += out.seen
            n_val = self.engine.n_val
            err, exact = (out.errors / n_val, out.seen == n_val) if out.logits_finite else (math.nan, True)
            self.curve.append((s, err, exact))
            if math.isnan(err):
                self.status, self.message = INFEASIBLE, f"non-finite logits at step {s}"
            elif err <= self.goal:
                self.status = COMPLETE
        self.wall += shared + time.perf_counter() - t0
        return self.finished

    def snapshot(self):
        """(progress, state) of an unfinished trial made with keep_state: `restore` on a fresh
        TrialRun of the same trial continues it bit for bit (repro.checkpoint)."""
        if not self.keep_state or self.finished:
            raise ValueError("only an unfinished trial made with keep_state=True has a snapshot")
        return {"done": self.done, "curve": [list(c) for c in self.curve],
                "examples_evaluated": self.examples_evaluated, "wall": self.wall}, self.state.arrays()

    def restore(self, progress, state):
        """Continue from a `snapshot` of the same trial (this TrialRun was just started)."""
        self.done, self.curve = int(progress["done"]), [(int(s), float(e), bool(x))
                                                        for s, e, x in progress["curve"]]
        self.examples_evaluated = int(progress["examples_evaluated"])
        self.wall = self.wall_before = float(progress["wall"])
        self.state, self.pending = self.engine.state_from_arrays(state), None

    def result(self, wall_time):
        """The outcome; `wall_time`: seconds of this run's training (a restored trial adds
        what it trained before its checkpoint)."""
        complete = self.status == COMPLETE
        return TrialResult(
            status=self.status, steps_to_result=self.curve[-1][0] if complete else None,
            steps=self.done, eval_steps=[c[0] for c in self.curve],
            val_errors=[c[1] for c in self.curve], val_exact=[c[2] for c in self.curve],
            examples_evaluated=self.examples_evaluated, wall_time=wall_time + self.wall_before,
            message=self.message)
