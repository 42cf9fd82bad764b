"""Quasi-random metaparameter search as a keras-tuner Oracle driven by scipy's Sobol sequence.

Paper mode (default): the unscrambled sequence without its all-zero point, so trial i gets
point i at every study point. Unit-cube coordinates become values through keras-tuner's own
`HyperParameter.prob_to_value`. The authors' "reverse log" momentum (1 - m log-uniform) is
searched as a log-scaled `one_minus_momentum`, which is exactly their mapping (keras-tuner's
own `reverse_log` is a different curve).
"""
import math
import warnings

import keras_tuner
from keras_tuner.engine import base_tuner
from scipy.stats import qmc

OBJECTIVE = "steps_to_result"


def hyperparameters(space):
    """keras-tuner HyperParameters for a spec's search dims (a tuple of spec.Dim)."""
    hp = keras_tuner.HyperParameters()
    for d in space:
        if d.scale == "reverse_log":
            hp.Float("one_minus_" + d.name, 1.0 - d.max, 1.0 - d.min, sampling="log")
        elif d.integer:
            hp.Int(d.name, int(d.min), int(d.max), sampling=d.scale)
        else:
            hp.Float(d.name, d.min, d.max, sampling=d.scale)
    return hp


def sobol_points(dims, n, scrambled=False, seed=0):
    """n points of the Sobol sequence in [0, 1)^dims (paper mode skips the zero point)."""
    with warnings.catch_warnings():  # n need not be a power of two here
        warnings.simplefilter("ignore", UserWarning)
        sampler = qmc.Sobol(dims, scramble=scrambled, seed=seed if scrambled else None)
        if not scrambled:
            sampler.fast_forward(1)
        return sampler.random(n)


def to_values(hp, point):
    """Map one unit-cube point to metaparameter values (with momentum = 1 - one_minus_momentum)."""
    values = {}
    for p, h in zip(point, hp.space):
        v = h.prob_to_value(float(p))
        if h.name.startswith("one_minus_"):
            values[h.name[len("one_minus_"):]] = 1.0 - v
        else:
            values[h.name] = v
    return values


class SobolOracle(keras_tuner.Oracle):
    """keras-tuner's trial t (ids in creation order) takes Sobol point order[t] (default: t)."""

    def __init__(self, space, max_trials, scrambled=False, seed=0, order=None, **kwargs):
        super().__init__(
            objective=keras_tuner.Objective(OBJECTIVE, direction="min"),
            max_trials=max_trials,
            hyperparameters=hyperparameters(space),
            # Infeasible trials are results, not failures: they never end the search.
            max_consecutive_failed_trials=None,
            **kwargs,
        )
        self.scrambled, self.sobol_seed = scrambled, seed
        self.points = sobol_points(len(space), max_trials, scrambled, seed)
        self.order = list(order) if order is not None else list(range(max_trials))
        if sorted(self.order) != list(range(max_trials)):
            raise ValueError(f"order must be a permutation of range({max_trials}), got {order}")

    def sobol_index(self, trial_id):
        """The Sobol index (repro's trial number) of keras-tuner's trial `trial_id`."""
        return self.order[int(trial_id)]

    def populate_space(self, trial_id):
        point = self.points[self.sobol_index(trial_id)]
        values = {h.name: h.prob_to_value(float(p)) for p, h in zip(point, self.hyperparameters.space)}
        return {"status": keras_tuner.engine.trial.TrialStatus.RUNNING, "values": values}


class StepsToResultTuner(base_tuner.BaseTuner):
    """Runs each trial through `run_trial_fn(index, values) -> objective` (min is best).

    The objective is steps-to-result, or +inf for incomplete, capped and infeasible trials,
    which keras-tuner records like any other result.
    """

    def __init__(self, oracle, run_trial_fn, directory, project_name, overwrite=False):
        self.run_trial_fn = run_trial_fn
        super().__init__(oracle=oracle, hypermodel=None, directory=directory,
                         project_name=project_name, overwrite=overwrite)

    def run_trial(self, trial, *args, **kwargs):
        values = {}
        for name, v in trial.hyperparameters.values.items():
            if name.startswith("one_minus_"):
                values[name[len("one_minus_"):]] = 1.0 - v
            else:
                values[name] = v
        objective = self.run_trial_fn(self.oracle.sobol_index(trial.trial_id), values)
        return {OBJECTIVE: math.inf if objective is None else float(objective)}

    def save_model(self, trial_id, model, step=0):  # trials keep records, not models
        return None

    def load_model(self, trial):
        return None


def first_points(space, n, scrambled=False, seed=0):
    """Metaparameter values of the first n trials (for plans and tests)."""
    hp = hyperparameters(space)
    return [to_values(hp, p) for p in sobol_points(len(space), n, scrambled, seed)]


__all__ = ["SobolOracle", "StepsToResultTuner", "hyperparameters", "sobol_points",
           "to_values", "first_points", "OBJECTIVE"]
