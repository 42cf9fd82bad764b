"""What a trial is and sees on either engine: its outcome (`TrialResult`), the order it visits
the training examples (`DataOrder`) and the early-exit threshold (`error_limit`).

No TensorFlow or JAX here: repro.engine (TensorFlow) and repro.engine_jax (JAX) both use these.
"""
import dataclasses
import math

import numpy as np

COMPLETE, INCOMPLETE, INFEASIBLE = "complete", "incomplete", "infeasible"


@dataclasses.dataclass
class TrialResult:
    """Outcome of one training run."""

    status: str                  # complete | incomplete | infeasible
    steps_to_result: int | None  # first evaluation step with error <= goal (complete only)
    steps: int                   # training steps actually run
    eval_steps: list             # steps at which the validation split was evaluated
    val_errors: list             # error on the validation split at those steps
    val_exact: list              # True: exact error; False: lower bound (early exit past the goal)
    wall_time: float             # seconds
    examples_evaluated: int = 0  # validation examples classified (early exit makes it fewer)
    message: str = ""


class DataOrder:
    """The order training examples are visited: the same for every trial of a study.

    Batches run across epoch boundaries; each epoch is a fresh permutation drawn from
    (seed, epoch), so any step range can be produced without replaying earlier ones.
    """

    def __init__(self, n, seed):
        self.n, self.seed = n, seed
        self._cache = {}

    def _perm(self, epoch):
        if epoch not in self._cache:
            if len(self._cache) > 4:
                self._cache.pop(min(self._cache))
            rng = np.random.default_rng([self.seed, epoch])
            self._cache[epoch] = rng.permutation(self.n).astype(np.int32)
        return self._cache[epoch]

    def indices(self, start_step, end_step, batch_size):
        """Example indices for steps [start_step, end_step), shape (steps, batch_size)."""
        first, last = start_step * batch_size, end_step * batch_size
        parts, pos = [], first
        while pos < last:
            epoch, offset = divmod(pos, self.n)
            take = min(self.n - offset, last - pos)
            parts.append(self._perm(epoch)[offset:offset + take])
            pos += take
        flat = np.concatenate(parts) if parts else np.zeros(0, np.int32)
        return flat.reshape(end_step - start_step, batch_size)


def error_limit(goal, n):
    """Most errors out of n that still meet the goal (k / n <= goal), exactly as floats compare."""
    k = int(math.floor(goal * n))
    while (k + 1) / n <= goal:
        k += 1
    while k >= 0 and k / n > goal:
        k -= 1
    return k
