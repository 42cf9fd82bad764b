"""Quasi-random metaparameter search as a keras-tuner Oracle driven by scipy's Sobol sequence.

A trial here is one Sobol point tried at one study point: trial i takes point i (repro.cluster's
oracle trials are something else, attempts at whole study points). Paper mode (default): the
unscrambled sequence without its all-zero point, so trial i gets point i at every study point.
Unit-cube coordinates become values through keras-tuner's own `HyperParameter.prob_to_value`.
The authors' "reverse log" momentum (1 - m log-uniform) is searched as a log-scaled
`one_minus_momentum`, which is exactly their mapping (keras-tuner's own `reverse_log` is a
different curve).

Importing this module imports neither keras-tuner nor TensorFlow: `first_points` maps the points
with `prob_to_value`, keras-tuner's arithmetic for the hyperparameters `hyperparameters` builds
written out in Python (tests/test_search.py checks the two give the same floats), so
`repro plan` names every trial's run without loading TensorFlow. The keras-tuner objects
(`hyperparameters`, `SobolOracle`) load keras-tuner when first used.
"""
import math
import warnings

from scipy.stats import qmc

# The metric every oracle of repro minimises: a trial's steps to the goal (SobolOracle), or a
# study point's K* (repro.cluster's chief); inf when the goal is not met.
OBJECTIVE = "steps_to_result"


def hyperparameters(space):
    """keras-tuner HyperParameters for a spec's search dims (a tuple of spec.Dim)."""
    import keras_tuner
    hp = keras_tuner.HyperParameters()
    for dim in space:
        if dim.scale == "reverse_log":
            hp.Float("one_minus_" + dim.name, 1.0 - dim.max, 1.0 - dim.min, sampling="log")
        elif dim.integer:
            hp.Int(dim.name, int(dim.min), int(dim.max), sampling=dim.scale)
        else:
            hp.Float(dim.name, dim.min, dim.max, sampling=dim.scale)
    return hp


def sobol_points(dims, n, scrambled=False, seed=0):
    """n points of the Sobol sequence in [0, 1)^dims (paper mode skips the zero point)."""
    with warnings.catch_warnings():  # n need not be a power of two here
        warnings.simplefilter("ignore", UserWarning)
        sampler = qmc.Sobol(dims, scramble=scrambled, seed=seed if scrambled else None)
        if not scrambled:
            sampler.fast_forward(1)
        return sampler.random(n)


def _numerical(lo, hi, scale, prob):
    """keras-tuner's Numerical._sample_numerical_value (linear or log; no reverse_log is built)."""
    if scale == "linear":
        return prob * (hi - lo) + lo
    return lo * math.pow(hi / lo, prob)


def prob_to_value(dim, prob):
    """(name, value) keras-tuner gives `hyperparameters((dim,))`'s hyperparameter at `prob`:
    hp.Float(...).prob_to_value(prob) (name one_minus_<name> for reverse_log), or hp.Int's, in
    the same floating-point operations."""
    prob = float(prob)
    if dim.scale == "reverse_log":
        return "one_minus_" + dim.name, _numerical(float(1.0 - dim.max), float(1.0 - dim.min), "log", prob)
    if dim.integer:
        lo, hi = int(dim.min), int(dim.max)
        if dim.scale == "linear":  # hp.Int's default step 1: equal buckets of the range
            n = int((hi - lo) // 1 + 1)
            index = int(math.floor(prob / (1 / n)))
            return dim.name, int(lo + (min(index, n - 1)) * 1)
        return dim.name, int(_numerical(lo, hi + 1, dim.scale, prob))
    return dim.name, _numerical(float(dim.min), float(dim.max), dim.scale, prob)


def __getattr__(name):
    """SobolOracle is built on first use: defining it needs keras-tuner (and TensorFlow)."""
    if name == "SobolOracle":
        globals()[name] = cls = _sobol_oracle_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _sobol_oracle_class():
    import keras_tuner
    from keras_tuner.engine.trial import TrialStatus

    class SobolOracle(keras_tuner.Oracle):
        """keras-tuner's trial t (ids in creation order) takes Sobol point t: repro's trial t."""

        def __init__(self, space, max_trials, scrambled=False, seed=0, **kwargs):
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

        def sobol_index(self, trial_id):
            """The Sobol index (repro's trial number) of keras-tuner's trial `trial_id`."""
            return int(trial_id)

        def populate_space(self, trial_id):
            point = self.points[self.sobol_index(trial_id)]
            values = {h.name: h.prob_to_value(float(p)) for p, h in zip(point, self.hyperparameters.space)}
            return {"status": TrialStatus.RUNNING, "values": values}

    SobolOracle.__qualname__ = "SobolOracle"  # found as repro.search.SobolOracle (pickle, repr)
    return SobolOracle


def metaparameters(hp_values):
    """A trial's metaparameters from the oracle's values (momentum = 1 - one_minus_momentum)."""
    return {(name[len("one_minus_"):] if name.startswith("one_minus_") else name):
            (1.0 - v if name.startswith("one_minus_") else v) for name, v in hp_values.items()}


def first_points(space, n, scrambled=False, seed=0):
    """Metaparameters of trials 0..n-1 as the Sobol oracle gives them (a study point's trials:
    every trial of a point races, so the whole sequence is asked for at once). The oracle's
    populate_space, without building it: `prob_to_value` is its arithmetic."""
    return [metaparameters(dict(prob_to_value(dim, prob) for dim, prob in zip(space, point)))
            for point in sobol_points(len(space), n, scrambled, seed)]


__all__ = ["SobolOracle", "hyperparameters", "sobol_points", "metaparameters",
           "first_points", "prob_to_value", "OBJECTIVE"]
