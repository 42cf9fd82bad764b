"""The naive sides of the bench: what a Keras user writes. keras-tuner drives the same Sobol
trials as repro (repro.search.SobolOracle); each trial builds its network, prunes it by SNIP,
and trains it with `model.fit` over repro's batches, under a callback that classifies the
whole validation split at every evaluation step and stops at the goal. No capping, no early
exit, one trial at a time. The update rule is the paper's TF1 one, a small Keras optimizer.

This module imports Keras and TensorFlow: only a side's own process loads it
(repro.bench.sides.run_side).
"""
import dataclasses
import json
import math
import pathlib
import tempfile

import keras
import keras_tuner
import numpy as np

from .. import data as data_mod, engine, models, pruning, search
from ..errors import UsageError
from .compare import best_of, point_key

VALIDATION_BATCH = 1000  # examples per predict batch of an evaluation


class TF1Optimizer(keras.optimizers.Optimizer):
    """A Keras optimizer with TF1 semantics (v <- m v + g; w <- w - lr v) whose gradients are
    multiplied by SNIP masks (one per trainable variable); `update_rule`: sgd, momentum or
    nesterov (a panel's optimizer)."""

    def __init__(self, learning_rate, momentum, update_rule, masks):
        super().__init__(learning_rate=learning_rate, name="tf1")
        self.momentum = momentum
        self.update_rule, self.masks = update_rule, masks

    def build(self, variables):
        super().build(variables)
        self.velocities = [self.add_variable_from_reference(w, "velocity") for w in variables]

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        masked = gradient * self.masks[i]
        lr = keras.ops.cast(learning_rate, variable.dtype)
        if self.update_rule == "sgd":
            self.assign_sub(variable, lr * masked)
            return
        velocity = self.velocities[i]
        self.assign(velocity, self.momentum * velocity + masked)
        self.assign_sub(variable, lr * (masked + self.momentum * velocity
                                        if self.update_rule == "nesterov" else velocity))


class Batches(keras.utils.PyDataset):
    """`steps` training batches of `batch_size` examples, in repro's data order."""

    def __init__(self, data, order, batch_size, steps):
        super().__init__()
        self.data, self.order, self.batch_size, self.steps = data, order, batch_size, steps

    def __len__(self):
        return self.steps

    def __getitem__(self, step):
        idx = self.order.indices(step, step + 1, self.batch_size)[0]
        return self.data.x_train[idx], self.data.y_train[idx]


@dataclasses.dataclass
class Harness:
    """What every trial of the naive side shares: the study, its data in repro's order, and the
    work counted over all trials."""

    spec: object
    panel: object               # spec.Panel
    eval_steps: tuple           # the steps after which a trial is evaluated
    data: object                # repro.data's splits
    order: object               # engine.DataOrder of the training split
    counters: dict = dataclasses.field(default_factory=lambda: {
        "steps_trained": 0, "examples_evaluated": 0, "trials_trained": 0})


class EvaluateAndStop(keras.callbacks.Callback):
    """After each evaluation step, the error over the whole validation split; training stops
    at the first step whose error is at or below the goal (that step is `k`)."""

    def __init__(self, harness):
        super().__init__()
        self.harness, self.eval_steps = harness, set(harness.eval_steps)
        self.k, self.steps = None, 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps = batch + 1
        if self.steps in self.eval_steps:
            data = self.harness.data
            logits = self.model.predict(data.x_val, batch_size=VALIDATION_BATCH, verbose=0)
            self.harness.counters["examples_evaluated"] += len(data.y_val)
            if np.mean(np.argmax(logits, axis=1) != data.y_val) <= self.harness.panel.goal_error:
                self.k = self.steps
                self.model.stop_training = True


class NaiveTuner(keras_tuner.Tuner):
    """keras-tuner's Tuner over one study point: each trial trains a network with `model.fit`
    for at most `budget` steps; `steps_by_trial` collects {Sobol index: steps to the goal, or
    None}."""

    def __init__(self, harness, sparsity, batch_size, budget, **kwargs):
        super().__init__(**kwargs)
        self.harness, self.sparsity, self.batch_size, self.budget = harness, sparsity, batch_size, budget
        self.steps_by_trial = {}

    def _initial_model(self, trial_index):
        """The trial's network at its initial weights, SNIP-pruned at a sparse point, and its
        masks."""
        harness = self.harness
        data = harness.data
        model = models.build(harness.panel.model, data.x_train.shape[1:])
        init = models.initial_weights(model, harness.spec.seed + trial_index)
        masks = [np.ones_like(w) for w in init]
        if self.sparsity > 0:
            scores = pruning.connection_sensitivity(model, init, data.x_train, data.y_train)
            masks = pruning.masks_from_scores(scores, self.sparsity)
        for w, w0, m0 in zip(model.trainable_variables, init, masks):
            w.assign(w0 * m0)
        return model, masks

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        momentum = 1.0 - values["one_minus_momentum"] if "one_minus_momentum" in values else 0.0
        trial_index = self.oracle.sobol_index(trial.trial_id)
        harness = self.harness
        model, masks = self._initial_model(trial_index=trial_index)
        optimizer = TF1Optimizer(learning_rate=values["learning_rate"], momentum=momentum,
                                 update_rule=harness.panel.optimizer, masks=masks)
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        stop = EvaluateAndStop(harness=harness)
        batches = Batches(data=harness.data, order=harness.order, batch_size=self.batch_size,
                          steps=self.budget)
        model.fit(batches, epochs=1, verbose=0, shuffle=False,
                  callbacks=[stop, keras.callbacks.TerminateOnNaN()])
        harness.counters["steps_trained"] += stop.steps
        harness.counters["trials_trained"] += 1
        self.steps_by_trial[trial_index] = stop.k
        return {search.OBJECTIVE: math.inf if stop.k is None else float(stop.k)}


def search_point(harness, grid, sparsity, batch_size):
    """{Sobol index: steps to the goal, or None} of every trial of one study point, searched by
    keras-tuner with repro's Sobol oracle."""
    spec = harness.spec
    oracle = search.SobolOracle(grid.search, grid.trials, scrambled=spec.sobol == "scrambled",
                                seed=spec.sobol_seed)
    with tempfile.TemporaryDirectory() as tmp:
        tuner = NaiveTuner(harness=harness, sparsity=sparsity, batch_size=batch_size,
                           budget=grid.max_steps_for(batch_size), oracle=oracle,
                           hypermodel=lambda hp: None, directory=tmp, project_name="naive",
                           overwrite=True)
        tuner.search(verbose=0)
    return tuner.steps_by_trial


def naive_side(spec, panel_plan, out, label="naive"):
    """Run the study the naive way; write per point K*, best trial and every trial's
    steps-to-result, and the counters, to `out` (JSON). Progress lines start with `label`."""
    panel = panel_plan.panel
    if panel.schedule != "constant":
        raise UsageError(spec.path, f"panel[{panel.id}].schedule",
                         "the naive harness covers constant learning rates only", "bench another panel")
    data = data_mod.load(panel.dataset)
    harness = Harness(spec=spec, panel=panel, eval_steps=panel_plan.eval_steps, data=data,
                      order=engine.DataOrder(len(data.y_train), spec.seed))
    points, trials = {}, {}
    for s, b in panel_plan.points:
        steps_by_trial = search_point(harness=harness, grid=panel_plan.grid, sparsity=s, batch_size=b)
        key = point_key(s, b)
        points[key], trials[key] = best_of(steps_by_trial), steps_by_trial
        print(f"{label}: s={s:g} B={b} K*={points[key]['k']} best trial={points[key]['best']}",
              flush=True)
    pathlib.Path(out).write_text(json.dumps({"points": points, "trials": trials, **harness.counters}))
