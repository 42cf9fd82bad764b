"""The naive side of the bench: what a Keras user writes (keras-tuner over the same Sobol
trials, `model.fit`, an evaluation callback that stops at the goal, SNIP per trial)."""
import json
import math
import pathlib
import tempfile

import numpy as np

from ..errors import UsageError
from .compare import best_of, point_key


def _tf1_optimizer(kind, masks):
    """A Keras optimizer with TF1 semantics (v <- m v + g; w <- w - lr v) and SNIP masks."""
    import keras

    class TF1(keras.optimizers.Optimizer):
        def __init__(self, learning_rate, momentum=0.0):
            super().__init__(learning_rate=learning_rate, name="tf1")
            self.momentum = momentum

        def build(self, variables):
            super().build(variables)
            self.v = [self.add_variable_from_reference(w, "velocity") for w in variables]

        def update_step(self, gradient, variable, learning_rate):
            i = self._get_variable_index(variable)
            g = gradient * masks[i]
            lr = keras.ops.cast(learning_rate, variable.dtype)
            if kind == "sgd":
                self.assign_sub(variable, lr * g)
                return
            v = self.v[i]
            self.assign(v, self.momentum * v + g)
            self.assign_sub(variable, lr * (g + self.momentum * v if kind == "nesterov" else v))

    return TF1


def naive_side(spec, pp, out, label="naive"):
    """Run the study the naive way; write per point K*, best trial and every trial's
    steps-to-result, and the counters, to `out` (JSON). Progress lines start with `label`."""
    import keras
    import keras_tuner
    from .. import data as data_mod, engine, models, pruning, search

    panel, g = pp.panel, pp.grid
    if panel.schedule != "constant":
        raise UsageError(spec.path, f"panel[{panel.id}].schedule",
                         "the naive harness covers constant learning rates only", "bench another panel")
    data = data_mod.load(panel.dataset)
    order = engine.DataOrder(len(data.y_train), spec.seed)
    counters = {"steps_trained": 0, "examples_evaluated": 0, "trials_trained": 0}
    points, trials = {}, {}

    class Batches(keras.utils.PyDataset):
        def __init__(self, b, steps):
            super().__init__()
            self.b, self.steps = b, steps

        def __len__(self):
            return self.steps

        def __getitem__(self, i):
            idx = order.indices(i, i + 1, self.b)[0]
            return data.x_train[idx], data.y_train[idx]

    class EvaluateAndStop(keras.callbacks.Callback):
        def __init__(self, eval_steps, goal):
            super().__init__()
            self.eval_steps, self.goal, self.k, self.steps = set(eval_steps), goal, None, 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps = batch + 1
            if self.steps in self.eval_steps:
                logits = self.model.predict(data.x_val, batch_size=1000, verbose=0)
                counters["examples_evaluated"] += len(data.y_val)
                if np.mean(np.argmax(logits, axis=1) != data.y_val) <= self.goal:
                    self.k = self.steps
                    self.model.stop_training = True

    for s, b in pp.points:
        budget = g.max_steps_for(b)
        steps_by_trial = {}

        class Tuner(keras_tuner.Tuner):
            def run_trial(self, trial, *args, **kwargs):
                hp = trial.hyperparameters.values
                lr = hp["learning_rate"]
                m = 1.0 - hp["one_minus_momentum"] if "one_minus_momentum" in hp else 0.0
                i = self.oracle.sobol_index(trial.trial_id)
                model = models.build(panel.model, data.x_train.shape[1:])
                init = models.initial_weights(model, spec.seed + i)
                mask = [np.ones_like(w) for w in init]
                if s > 0:
                    scores = pruning.connection_sensitivity(model, init, data.x_train, data.y_train)
                    mask = pruning.masks_from_scores(scores, s)
                for w, w0, m0 in zip(model.trainable_variables, init, mask):
                    w.assign(w0 * m0)
                model.compile(optimizer=_tf1_optimizer(panel.optimizer, mask)(lr, m),
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
                stop = EvaluateAndStop(pp.eval_steps, panel.goal_error)
                model.fit(Batches(b, budget), epochs=1, verbose=0, shuffle=False,
                          callbacks=[stop, keras.callbacks.TerminateOnNaN()])
                counters["steps_trained"] += stop.steps
                counters["trials_trained"] += 1
                steps_by_trial[i] = stop.k
                return {search.OBJECTIVE: math.inf if stop.k is None else float(stop.k)}

        oracle = search.SobolOracle(g.search, g.trials, scrambled=spec.sobol == "scrambled",
                                    seed=spec.sobol_seed)
        with tempfile.TemporaryDirectory() as tmp:
            tuner = Tuner(oracle=oracle, hypermodel=lambda hp: None, directory=tmp,
                          project_name="naive", overwrite=True)
            tuner.search(verbose=0)
        key = point_key(s, b)
        points[key], trials[key] = best_of(steps_by_trial), steps_by_trial
        print(f"{label}: s={s:g} B={b} K*={points[key]['k']} best trial={points[key]['best']}",
              flush=True)
    pathlib.Path(out).write_text(json.dumps({"points": points, "trials": trials, **counters}))

