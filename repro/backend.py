"""Which engine trains: TensorFlow (repro.engine) or JAX (repro.engine_jax), as Keras's backend says.

Keras picks its backend once per process, when it is first imported: the environment variable
KERAS_BACKEND, else the "backend" of $KERAS_HOME/keras.json (~/.keras/keras.json), else
tensorflow. repro follows it: `KERAS_BACKEND=jax python -m repro run ...` trains every trial on
the JAX engine, and the models, initial weights, SNIP masks, data order, schedules and early
exit are the same as on TensorFlow. Told here without importing Keras or TensorFlow, so that
`repro plan` and run ids stay cheap.

A JAX trial's bits depend on how many trial slots its vmapped step has (JAX_SLOTS: a trial
run alone computes in one slot of that many) and on how many devices its batch is split over
(the gradients are summed in another order), so its run id says so (`identity`); a
TensorFlow trial's identity is as it always was.
"""
import json
import os
import pathlib

from .errors import UsageError

BACKENDS = ("tensorflow", "jax")
JAX_SLOTS = 6  # trials one vmapped JAX step advances together (repro.engine_jax)


def _configured():
    """The backend Keras will load in this process (see the module docstring)."""
    import sys
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        return keras.backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        return json.loads((pathlib.Path(home) / "keras.json").read_text()).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def name():
    """'tensorflow' or 'jax': the engine trials train on in this process."""
    backend = _configured()
    if backend not in BACKENDS:
        raise UsageError("KERAS_BACKEND", repr(backend), "repro trains with the tensorflow or jax "
                         "backend only", "set KERAS_BACKEND=jax, or unset it for TensorFlow")
    return backend


def is_jax():
    """Whether trials train on the JAX engine here."""
    return name() == "jax"


def identity(replicas=1):
    """What a trial's run id adds for this engine: nothing on TensorFlow (the ids stored so far
    stay valid), the engine and its slot count on JAX (other bits: its own records), and there
    the number of devices its batch is split over when it is more than one (`replicas`:
    repro.plan.placement; a trial on one device keeps the id it had)."""
    if not is_jax():
        return {}
    return {"engine": "jax", "slots": JAX_SLOTS, **({"replicas": replicas} if replicas > 1 else {})}


def layouts(batch_size):
    """The replica counts a trial at `batch_size` may have trained on that give it a run id of
    its own: 1, and on JAX every divisor of the batch above 1 (repro.plan.placement's choices)."""
    if not is_jax():
        return [1]
    return [1, *(r for r in range(2, batch_size + 1) if batch_size % r == 0)]
