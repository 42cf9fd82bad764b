"""The devices trials run on: GPUs when TensorFlow sees any, else the CPU.

`REPRO_LOGICAL_CPUS=n` splits the CPU into n logical devices (TensorFlow's
`set_logical_device_configuration`; on JAX, n host devices:
XLA_FLAGS=--xla_force_host_platform_device_count=n, set when jax has not started yet), so the
multi-device paths -- a trial whose batch is split over several devices (`mirrored`) -- run and
are tested on a machine without GPUs.

On GPUs every process asks for device memory as it needs it (memory growth), so the
`repro run` parent (which may train mirrored points) and its workers, one per GPU, share
the devices instead of the first process taking all of each GPU's memory.

On the JAX engine (KERAS_BACKEND=jax, repro.backend) the same questions are asked of jax
(`_jax_*`), and TensorFlow is never imported: it need not be installed.
"""
import os
import re

from . import backend


def engine_module():
    """The engine module trials train on here: repro.engine (TensorFlow) or repro.engine_jax."""
    if backend.is_jax():
        from . import engine_jax
        return engine_jax
    from . import engine
    return engine


def pin_threads(threads=1):
    """One compute thread per trial, as repro.engine.pin_threads; on the JAX engine XLA's CPU
    thread pool (when no GPU computes). False when it is too late for this process."""
    if not backend.is_jax():
        from . import engine
        return engine.pin_threads(threads)
    return gpu_count_without_runtime() > 0 or _pin_xla_cpu_threads(threads)


def _pin_xla_cpu_threads(threads):
    """XLA_FLAGS for `threads` CPU threads, if jax has not started its backends yet."""
    flags = f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={threads}"
    current = os.environ.get("XLA_FLAGS", "")
    if flags in current:
        return True
    if _jax_started():
        return False
    os.environ["XLA_FLAGS"] = f"{current} {flags}".strip()
    return True


def _logical_cpus():
    """REPRO_LOGICAL_CPUS as a count (0: not set)."""
    return int(os.environ.get("REPRO_LOGICAL_CPUS", "0") or 0)


def _force_jax_host_devices(n):
    """XLA_FLAGS for `n` CPU devices (jax's host platform), if jax has not started its
    backends yet (the other flags stay); True when jax will see them (or was told already)."""
    flag = f"--xla_force_host_platform_device_count={n}"
    current = os.environ.get("XLA_FLAGS", "")
    if flag in current.split():
        return True
    if _jax_started() or "--xla_force_host_platform_device_count=" in current:
        return False
    # first: XLA stops reading flags at a word without "--" (`_pin_xla_cpu_threads` adds one)
    os.environ["XLA_FLAGS"] = f"{flag} {current}".strip()
    return True


def _jax_started():
    """Whether jax has started its backends in this process (its flags are read then)."""
    import sys
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge
    return xla_bridge.backends_are_initialized()


def _jax_gpus():
    import jax
    try:
        return jax.devices("gpu")
    except RuntimeError:  # no GPU backend
        return []


def trained_on():
    """What trains this process's trials, for their records: backend, its version, device."""
    if backend.is_jax():
        import jax
        gpus = _jax_gpus()
        return {"backend": "jax", "version": jax.__version__,
                "device": gpus[0].device_kind if gpus else "cpu"}
    import tensorflow as tf
    return {"backend": "tensorflow", "version": tf.__version__, "device": device_kind()}


def _grow_gpu_memory(tf):
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError):
            pass  # already initialised: its setting stays


def _jax_devices():
    """The jax devices trials may use: the GPUs, else REPRO_LOGICAL_CPUS CPU devices (as many
    as jax has: XLA_FLAGS asks for them if jax has not started yet), else the first CPU."""
    n = _logical_cpus()
    if n > 1:
        _force_jax_host_devices(n)
    import jax
    return _jax_gpus() or jax.devices("cpu")[:max(n, 1)]


def logical_devices():
    """Names of the devices trials may use (configures logical CPUs first if asked)."""
    if backend.is_jax():
        return [str(d) for d in _jax_devices()]
    import tensorflow as tf
    n = _logical_cpus()
    if n > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
        except RuntimeError:
            pass  # already initialised (configured earlier in this process)
    _grow_gpu_memory(tf)
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return [d.name for d in gpus]
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    return cpus if n > 1 else cpus[:1]


def gpu_count():
    """GPUs TensorFlow can see, without starting its runtime on them (no memory is taken)."""
    if backend.is_jax():
        return len(_jax_gpus())
    import tensorflow as tf
    return len(tf.config.list_physical_devices("GPU"))


def gpu_count_without_runtime():
    """GPUs `repro run` will see, told without importing TensorFlow (`repro plan` describes the
    placement in a fraction of a second): TensorFlow's own count when it is loaded already; 0 with
    TensorFlow's CPU build installed (the package tensorflow-cpu) or CUDA_VISIBLE_DEVICES empty or
    -1; else the GPUs CUDA_VISIBLE_DEVICES names, else the NVIDIA driver's device files."""
    import sys
    if backend.is_jax():
        if _jax_started():
            return gpu_count()
    elif "tensorflow" in sys.modules:
        return gpu_count()
    else:
        from importlib import metadata
        try:
            metadata.distribution("tensorflow-cpu")
            return 0
        except metadata.PackageNotFoundError:
            pass
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v for v in visible.split(",") if v.strip()]
        return 0 if not ids or ids[0].strip() == "-1" else len(ids)
    import glob
    driver = glob.glob("/proc/driver/nvidia/gpus/*")
    nodes = [p for p in glob.glob("/dev/nvidia*") if re.fullmatch(r"/dev/nvidia\d+", p)]
    return max(len(driver), len(nodes))


def device_count_without_runtime():
    """How many devices trials can use (as logical_devices counts them), without TensorFlow."""
    n = _logical_cpus()
    gpus = gpu_count_without_runtime()
    return gpus or (n if n > 1 else 1)


def default_workers():
    """`repro run`'s worker processes: one per GPU, else one per core (one thread each)."""
    return gpu_count() or os.cpu_count() or 1


def device_kind():
    """What the devices trials run on are, as a file-name word: 'cpu' or e.g. 'nvidia-h200'."""
    if backend.is_jax():
        gpus = _jax_gpus()
        name = gpus[0].device_kind if gpus else "cpu"
        return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-") or "gpu"
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "cpu"
    try:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "gpu")
    except (RuntimeError, ValueError):
        name = "gpu"
    return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-") or "gpu"


def pin_worker(index):
    """Make GPU `index` (mod the count) the only one this worker process sees."""
    if backend.is_jax():  # a worker starts jax after this: CUDA then shows it this one GPU
        n = gpu_count_without_runtime()
        if n > 1 and not _jax_started():
            os.environ["CUDA_VISIBLE_DEVICES"] = str(index % n)
        return
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        tf.config.set_visible_devices(gpus[index % len(gpus)], "GPU")
        _grow_gpu_memory(tf)


def mirrored(replicas):
    """The layout of a batch split over the first `replicas` devices (logical_devices).

    TensorFlow: a MirroredStrategy (repro.engine splits each global batch evenly over its
    replicas). JAX: a `jax.sharding.Mesh` of those devices with one axis, "data", over which
    repro.engine_jax splits each step's batch (data and trial states on every device, gradients
    all-reduced by XLA). That mesh is what `keras.distribution.DataParallel` builds on JAX; it
    is made with jax.sharding directly, since Keras turns its DeviceMesh into a jax Mesh only
    through private API. A UsageError when there are fewer devices."""
    if backend.is_jax():
        import jax
        import numpy as np
        devices = _jax_devices()
        if len(devices) < replicas:
            from .errors import UsageError
            raise UsageError("--max-device-batch", "", f"a batch split over {replicas} devices "
                             f"needs {replicas}; jax sees {len(devices)} here "
                             f"({', '.join(str(d) for d in devices)})",
                             "raise --max-device-batch, or run where there are more devices "
                             "(on the CPU: REPRO_LOGICAL_CPUS=n before jax starts)")
        return jax.sharding.Mesh(np.array(devices[:replicas]), ("data",))
    import tensorflow as tf
    return tf.distribute.MirroredStrategy(logical_devices()[:replicas])
