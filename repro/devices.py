"""The devices trials run on: GPUs when TensorFlow sees any, else the CPU.

`REPRO_LOGICAL_CPUS=n` splits the CPU into n logical devices (TensorFlow's
`set_logical_device_configuration`), so the multi-device paths -- a trial on a
MirroredStrategy -- run and are tested on a machine without GPUs.
"""
import os


def logical_devices():
    """Names of the devices trials may use (configures logical CPUs first if asked)."""
    import tensorflow as tf
    n = int(os.environ.get("REPRO_LOGICAL_CPUS", "0") or 0)
    if n > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
        except RuntimeError:
            pass  # already initialised (configured earlier in this process)
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return [d.name for d in gpus]
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    return cpus if n > 1 else cpus[:1]


def pin_worker(index):
    """Make GPU `index` (mod the count) the only one this worker process sees."""
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        tf.config.set_visible_devices(gpus[index % len(gpus)], "GPU")


def mirrored(replicas):
    """A MirroredStrategy over the first `replicas` devices."""
    import tensorflow as tf
    return tf.distribute.MirroredStrategy(logical_devices()[:replicas])
